-- Fleet-wide per-tenant concurrency: slots 0 .. limit - 1 per tenant, each held by one call at a
-- time. A call takes a free slot (expired: released or left by a crashed holder) with
-- UPDATE ... SKIP LOCKED, and frees it when it ends; nothing holds a connection meanwhile.
CREATE TABLE tenant_slots (
  tenant_id TEXT NOT NULL,
  slot INTEGER NOT NULL CHECK (slot >= 0),
  token TEXT,
  expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
  PRIMARY KEY (tenant_id, slot)
);
