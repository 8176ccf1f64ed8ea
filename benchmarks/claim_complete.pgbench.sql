-- pgbench twin of PostgresStore.claim_due(1) followed by complete(): the same two statements.
WITH due AS (
    SELECT id FROM outbox
    WHERE done_at IS NULL AND next_attempt_at <= '2031-01-01T00:00:00+00'::timestamptz
      AND (locked_until IS NULL OR locked_until <= '2031-01-01T00:00:00+00'::timestamptz)
    ORDER BY next_attempt_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o SET locked_until = '2031-01-01T00:01:00+00'::timestamptz,
                       lease_token = md5(random()::text)
FROM due WHERE o.id = due.id
RETURNING o.id AS claimed_id, o.tenant_id, o.workflow, o.payload, o.idempotency_key, o.event_id,
          o.attempt, o.next_attempt_at, o.locked_until, o.lease_token AS claimed_token,
          o.created_at, o.errors, o.retry_count, o.done_at \gset
UPDATE outbox SET done_at = '2031-01-01T00:00:01+00'::timestamptz, locked_until = NULL,
                  lease_token = NULL
WHERE id = ':claimed_id'::uuid AND lease_token = ':claimed_token' AND done_at IS NULL;
