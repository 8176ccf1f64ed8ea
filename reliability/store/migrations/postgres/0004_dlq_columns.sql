-- What the DLQ needs beyond the seed: where an entry came from, its attempt history, and the
-- indexes for filtered keyset reads, depth and expiry purges.

ALTER TABLE n8n_dlq
  ADD COLUMN idempotency_key TEXT,
  ADD COLUMN event_id TEXT,
  ADD COLUMN source_outbox_id UUID,
  ADD COLUMN original_created_at TIMESTAMPTZ,
  ADD COLUMN errors JSONB NOT NULL DEFAULT '[]'::jsonb;

-- The fixed category list (reliability.errors.ErrorCode). NOT VALID: rows written before this
-- migration are not re-checked; every new row is.
ALTER TABLE n8n_dlq ADD CONSTRAINT n8n_dlq_error_code_check CHECK (
  error_code IN (
    'TIMEOUT', 'CONNECTION', 'HTTP_5XX', 'HTTP_429', 'HTTP_4XX',
    'CIRCUIT_OPEN', 'QUOTA', 'INVALID_PAYLOAD', 'RETRY_BUDGET'
  )
) NOT VALID;

-- Keyset pages, newest first: all tenants, and per tenant (filters on workflow and error code
-- are applied on top of these).
CREATE INDEX n8n_dlq_created_idx ON n8n_dlq (created_at DESC, id DESC);
CREATE INDEX n8n_dlq_tenant_created_idx ON n8n_dlq (tenant_id, created_at DESC, id DESC);
-- Expiry: purge_expired, and the per-tenant depth behind the alert.
CREATE INDEX n8n_dlq_expires_idx ON n8n_dlq (expires_at);
CREATE INDEX n8n_dlq_tenant_expires_idx ON n8n_dlq (tenant_id, expires_at);
