-- The real replay guard: every (tenant, event id) processed, kept for the retention window.
-- The seed's stripe_event_ledger (last id per tenant) alone lets older events be replayed.

CREATE TABLE processed_events (
  tenant_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  processed_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, event_id)
);

-- Retention purge: processed_at < cutoff.
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
