-- pgbench twin of PostgresStore.accept_event with one delivery: the same single statement
-- (replay-guard insert + ledger upsert + outbox insert), one tenant per client.
\set r random(1, 1000000000000)
WITH ins AS (
    INSERT INTO processed_events (tenant_id, event_id, processed_at)
    VALUES ('bench-' || :client_id, 'evt_' || :r, '2031-01-01T00:00:00+00'::timestamptz)
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, event_id, processed_at
), led AS (
    INSERT INTO stripe_event_ledger AS l
        (tenant_id, last_processed_event_id, last_processed_at, updated_at)
    SELECT tenant_id, event_id, processed_at, processed_at FROM ins
    ON CONFLICT (tenant_id) DO UPDATE SET
        last_processed_event_id = EXCLUDED.last_processed_event_id,
        last_processed_at = EXCLUDED.last_processed_at,
        updated_at = EXCLUDED.updated_at
    WHERE l.last_processed_at <= EXCLUDED.last_processed_at
), box AS (
    INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key, event_id, attempt,
                        next_attempt_at, created_at)
    SELECT d.id, d.tenant_id, d.workflow, d.payload::jsonb, d.idempotency_key, d.event_id, 0,
           '2031-01-01T00:00:00+00'::timestamptz, '2031-01-01T00:00:00+00'::timestamptz
    FROM unnest(ARRAY[gen_random_uuid()], ARRAY['bench-' || :client_id], ARRAY['wf'],
                ARRAY['{"n": ' || :r || ', "s": "bench"}'], ARRAY['key-' || :r],
                ARRAY['evt_' || :r])
        AS d(id, tenant_id, workflow, payload, idempotency_key, event_id)
    WHERE EXISTS (SELECT 1 FROM ins)
)
SELECT count(*) FROM ins;
