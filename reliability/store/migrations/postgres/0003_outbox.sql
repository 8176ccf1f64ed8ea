-- Deliveries to make. Rows stay after delivery (done_at set) so invariant checks can see
-- "delivered"; purge_done removes them after retention.

CREATE TABLE outbox (
  id UUID PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  workflow TEXT NOT NULL,
  payload JSONB NOT NULL,
  idempotency_key TEXT NOT NULL,
  event_id TEXT,
  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  next_attempt_at TIMESTAMPTZ NOT NULL,
  locked_until TIMESTAMPTZ,
  lease_token TEXT,
  created_at TIMESTAMPTZ NOT NULL,
  done_at TIMESTAMPTZ,
  errors JSONB NOT NULL DEFAULT '[]'::jsonb,
  -- Set when the row came back from the DLQ by a manual retry.
  retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  dlq_id UUID,
  original_created_at TIMESTAMPTZ
);

-- claim_due: due, not done, oldest first. Done rows are not in the index.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE done_at IS NULL;
-- purge_done and delivered_keys.
CREATE INDEX outbox_done_idx ON outbox (done_at) WHERE done_at IS NOT NULL;
