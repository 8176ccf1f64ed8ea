-- Fleet-wide per-tenant concurrency, as in postgres/0006: slots 0 .. limit - 1 per tenant, each
-- held by one call at a time until `expires_at` (released or left by a crashed holder). Several
-- processes (or simulated instances) sharing one file take them in BEGIN IMMEDIATE transactions.
CREATE TABLE tenant_slots (
  tenant_id TEXT NOT NULL,
  slot INTEGER NOT NULL CHECK (slot >= 0),
  token TEXT,
  expires_at TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, slot)
);
