-- The DLQ's category list grows by INTERNAL (reliability.errors.ErrorCode.INTERNAL). SQLite
-- cannot alter a CHECK constraint: the table is rebuilt with the same columns, in the same order.
CREATE TABLE n8n_dlq_next (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  workflow_name TEXT NOT NULL,
  payload TEXT NOT NULL,
  error_message TEXT,
  error_code TEXT CHECK (
    error_code IN (
      'TIMEOUT', 'CONNECTION', 'HTTP_5XX', 'HTTP_429', 'HTTP_4XX',
      'CIRCUIT_OPEN', 'QUOTA', 'INVALID_PAYLOAD', 'RETRY_BUDGET', 'INTERNAL'
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
INSERT INTO n8n_dlq_next SELECT * FROM n8n_dlq;
DROP TABLE n8n_dlq;
ALTER TABLE n8n_dlq_next RENAME TO n8n_dlq;
CREATE INDEX n8n_dlq_created_idx ON n8n_dlq (created_at DESC, id DESC);
CREATE INDEX n8n_dlq_tenant_created_idx ON n8n_dlq (tenant_id, created_at DESC, id DESC);
CREATE INDEX n8n_dlq_expires_idx ON n8n_dlq (expires_at);
CREATE INDEX n8n_dlq_tenant_expires_idx ON n8n_dlq (tenant_id, expires_at);
