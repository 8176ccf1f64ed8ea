-- The embedded store's schema: the same tables and columns as the Postgres migrations.
-- Times are UTC ISO-8601 text of fixed width (YYYY-MM-DDTHH:MM:SS.ffffff+00:00), so text order
-- is time order; ids are canonical lowercase UUID text; JSON is stored as text.

CREATE TABLE n8n_dlq (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  workflow_name TEXT NOT NULL,
  payload TEXT NOT NULL,
  error_message TEXT,
  error_code TEXT CHECK (
    error_code IN (
      'TIMEOUT', 'CONNECTION', 'HTTP_5XX', 'HTTP_429', 'HTTP_4XX',
      'CIRCUIT_OPEN', 'QUOTA', 'INVALID_PAYLOAD', 'RETRY_BUDGET'
    )
  ),
  retry_count INTEGER DEFAULT 0,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  idempotency_key TEXT,
  event_id TEXT,
  source_outbox_id TEXT,
  original_created_at TEXT,
  errors TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX n8n_dlq_created_idx ON n8n_dlq (created_at DESC, id DESC);
CREATE INDEX n8n_dlq_tenant_created_idx ON n8n_dlq (tenant_id, created_at DESC, id DESC);
CREATE INDEX n8n_dlq_expires_idx ON n8n_dlq (expires_at);
CREATE INDEX n8n_dlq_tenant_expires_idx ON n8n_dlq (tenant_id, expires_at);

CREATE TABLE stripe_event_ledger (
  tenant_id TEXT PRIMARY KEY,
  last_processed_event_id TEXT NOT NULL,
  last_processed_at TEXT NOT NULL,
  updated_at TEXT
);

CREATE TABLE processed_events (
  tenant_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  processed_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);

CREATE TABLE outbox (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  workflow TEXT NOT NULL,
  payload TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  event_id TEXT,
  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  next_attempt_at TEXT NOT NULL,
  locked_until TEXT,
  lease_token TEXT,
  created_at TEXT NOT NULL,
  done_at TEXT,
  errors TEXT NOT NULL DEFAULT '[]',
  retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  dlq_id TEXT,
  original_created_at TEXT
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE done_at IS NULL;
CREATE INDEX outbox_done_idx ON outbox (done_at) WHERE done_at IS NOT NULL;
