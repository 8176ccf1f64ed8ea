"""PostgresStore under real concurrency and faults (needs a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from slots_support import check_slots_free_and_expire

from harness.testing.postgres import PgDatabase
from reliability.errors import ErrorCode
from reliability.store import (
    NewDelivery,
    OutboxRow,
    PostgresStore,
    StoreError,
    StoreUnavailable,
    open_postgres,
    open_store,
)

pytestmark = pytest.mark.postgres

T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
LEASE = timedelta(seconds=60)
S = timedelta(seconds=1)


@pytest.fixture
async def stores(pg_database: PgDatabase) -> AsyncIterator[Callable[..., PostgresStore]]:
    """Opens stores on the test's schema (each its own pool); closes them all afterwards."""
    opened: list[PostgresStore] = []

    def make(**options: Any) -> PostgresStore:
        s = pg_database.open_store(**{"min_size": 1, "max_size": 1, **options})
        opened.append(s)
        return s

    yield make
    for s in opened:
        await s.close()


async def aconnect(db: PgDatabase) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(db.url, autocommit=True)
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(db.schema)))
    return conn


async def scalar(db: PgDatabase, query: str, *params: Any) -> Any:
    conn = await aconnect(db)
    async with conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
        assert row is not None
        return row[0]


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Poll a database condition (bounded): how a test waits for another backend's state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def backends_waiting_on_locks(db: PgDatabase, app_names: list[str]) -> list[int]:
    conn = await aconnect(db)
    async with conn:
        cur = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = ANY(%s)"
            " AND wait_event_type = 'Lock'",
            (app_names,),
        )
        return [r[0] for r in await cur.fetchall()]


# -- the concurrency tests the issue names ------------------------------------------------------


async def test_16_connections_deliver_the_same_1000_events(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    conns = [stores() for _ in range(16)]
    await conns[0].migrate()
    events = [f"evt_{i:04d}" for i in range(1000)]

    async def deliver(k: int, store: PostgresStore) -> list[str]:
        order = list(events)
        if k % 2:  # half walk in lockstep (maximal collisions), half in their own order
            random.Random(k).shuffle(order)
        won = []
        for e in order:
            d = NewDelivery("tenant-a", "wf", {"event": e}, f"{e}:wf", e)
            if (await store.accept_event("tenant-a", e, [d], now=T0)).new:
                won.append(e)
        return won

    results = await asyncio.gather(*(deliver(k, s) for k, s in enumerate(conns)))
    winners = Counter(e for won in results for e in won)
    assert sorted(winners) == events
    assert set(winners.values()) == {1}
    assert await scalar(pg_database, "SELECT count(*) FROM processed_events") == 1000
    assert await scalar(pg_database, "SELECT count(*) FROM outbox") == 1000
    assert await scalar(pg_database, "SELECT count(DISTINCT event_id) FROM outbox") == 1000
    assert await scalar(pg_database, "SELECT count(*) FROM stripe_event_ledger") == 1


async def test_8_claimers_drain_10000_rows_and_a_dead_claimers_rows_come_back(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    loader = stores(max_size=2)
    await loader.migrate()
    for chunk in range(10):
        batch = [
            NewDelivery("t", "wf", {"i": i}, f"k{i}")
            for i in range(chunk * 1000, chunk * 1000 + 1000)
        ]
        assert (await loader.accept_event("t", f"evt_{chunk}", batch, now=T0)).new

    doomed = stores()
    held = await doomed.claim_due(100, now=T0, lease=LEASE)
    assert len(held) == 100
    await doomed.close()  # the claimer dies: its connection is closed, its rows stay leased

    claimers = [stores() for _ in range(8)]

    async def drain(store: PostgresStore, now: datetime) -> list[str]:
        mine: list[str] = []
        for _ in range(10_000):
            rows = await store.claim_due(50, now=now, lease=LEASE)
            if not rows:
                break
            for row in rows:
                assert row.lease_token is not None
                assert await store.complete(row.id, row.lease_token, now=now)
                mine.append(row.id)
        return mine

    first = await asyncio.gather(*(drain(s, T0) for s in claimers))
    claimed = [i for ids in first for i in ids]
    assert len(claimed) == len(set(claimed)) == 9900
    held_ids = {r.id for r in held}
    assert held_ids.isdisjoint(claimed)
    assert all(len(ids) > 0 for ids in first)  # every claimer took part

    # Before the lease passes nobody can take the dead claimer's rows; after it, they come back.
    assert await claimers[0].claim_due(50, now=T0 + LEASE - S, lease=LEASE) == []
    second = await asyncio.gather(*(drain(s, T0 + LEASE) for s in claimers))
    reclaimed = [i for ids in second for i in ids]
    assert sorted(reclaimed) == sorted(held_ids)
    assert await scalar(pg_database, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0
    assert len(await claimers[0].delivered_keys()) == 10_000


async def test_4_concurrent_purges_remove_each_expired_row_once(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    purgers = [stores(purge_batch=100) for _ in range(4)]
    await purgers[0].migrate()
    conn = await aconnect(pg_database)
    async with conn:
        await conn.execute(
            "INSERT INTO n8n_dlq (id, tenant_id, workflow_name, payload, error_code, created_at,"
            " expires_at) SELECT gen_random_uuid(), 't' || (g %% 7), 'wf', '{}'::jsonb, 'TIMEOUT',"
            " %(t)s, CASE WHEN g <= 3000 THEN %(t)s + g * interval '1 ms'"
            " ELSE %(t)s + interval '1 day' END FROM generate_series(1, 3500) AS g",
            {"t": T0},
        )
    now = T0 + timedelta(hours=1)
    counts = await asyncio.gather(*(p.dlq_purge_expired(now=now) for p in purgers))
    assert sum(counts) == 3000
    assert await scalar(pg_database, "SELECT count(*) FROM n8n_dlq") == 500
    assert (
        await scalar(pg_database, "SELECT count(*) FROM n8n_dlq WHERE expires_at <= %s", now) == 0
    )


async def test_4_concurrent_outbox_purges_remove_each_old_done_row_once(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    purgers = [stores(purge_batch=100) for _ in range(4)]
    await purgers[0].migrate()
    conn = await aconnect(pg_database)
    async with conn:
        # 3000 rows done long ago, 400 done recently, 100 not done: only the first are purged.
        await conn.execute(
            "INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key,"
            " next_attempt_at, created_at, done_at) SELECT gen_random_uuid(), 't', 'wf',"
            " '{}'::jsonb, 'k' || g, %(t)s, %(t)s, CASE WHEN g <= 3000 THEN %(t)s"
            " WHEN g <= 3400 THEN %(t)s + interval '2 hours' END"
            " FROM generate_series(1, 3500) AS g",
            {"t": T0},
        )
    cutoff = T0 + timedelta(hours=1)
    counts = await asyncio.gather(*(p.purge_done(older_than=cutoff) for p in purgers))
    assert sum(counts) == 3000
    assert await scalar(pg_database, "SELECT count(*) FROM outbox") == 500
    assert await scalar(pg_database, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == 100


async def test_two_concurrent_manual_retries_of_one_entry_one_wins(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    setup = stores()
    await setup.migrate()
    delivery = NewDelivery("t", "wf", {"x": 1}, "k1", "evt_1")
    (oid,) = (await setup.accept_event("t", "evt_1", [delivery], now=T0)).outbox_ids
    row = await setup.claim(oid, now=T0, lease=LEASE)
    assert row is not None
    assert row.lease_token is not None
    entry = await setup.move_to_dlq(
        oid, row.lease_token, error_code=ErrorCode.HTTP_5XX, message="x", now=T0, ttl=LEASE
    )
    assert entry is not None

    names = [f"retry-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    a, b = (stores(application_name=n) for n in names)
    blocker = await psycopg.AsyncConnection.connect(pg_database.url)
    async with blocker:
        await blocker.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_database.schema))
        )
        await blocker.execute("SELECT 1 FROM n8n_dlq WHERE id = %s FOR UPDATE", (entry.id,))
        # Both retries start and queue on the entry's row lock: they truly overlap.
        race = asyncio.gather(a.dlq_retry(entry.id, now=T0 + S), b.dlq_retry(entry.id, now=T0 + S))

        async def both_waiting() -> bool:
            return len(await backends_waiting_on_locks(pg_database, names)) == 2

        await wait_until(both_waiting, "both retries to wait on the entry's lock")
        await blocker.rollback()
        results = await race
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    rows = await setup.outbox_rows()
    assert [(r.id, r.retry_count) for r in rows] == [(winners[0], 1)]
    assert await setup.dlq_get(entry.id, now=T0 + S) is None


async def test_a_killed_connection_mid_transaction_is_typed_and_writes_nothing(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    name = f"victim-{uuid.uuid4().hex[:8]}"
    victim = stores(application_name=name)
    await victim.migrate()
    assert (await victim.accept_event("t", "evt_0", [], now=T0)).new
    delivery = NewDelivery("t", "wf", {"x": 1}, "k1", "evt_1")

    blocker = await psycopg.AsyncConnection.connect(pg_database.url)
    async with blocker:
        await blocker.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_database.schema))
        )
        await blocker.execute("SELECT 1 FROM stripe_event_ledger WHERE tenant_id = 't' FOR UPDATE")
        # The accept has inserted its processed id (and outbox row) and now waits on the ledger row.
        task = asyncio.ensure_future(victim.accept_event("t", "evt_1", [delivery], now=T0 + S))
        pids: list[int] = []

        async def victim_waiting() -> bool:
            pids[:] = await backends_waiting_on_locks(pg_database, [name])
            return len(pids) == 1

        await wait_until(victim_waiting, "the accept to wait on the ledger row")
        killer = await aconnect(pg_database)
        async with killer:
            await killer.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        with pytest.raises(StoreUnavailable):
            await task
        await blocker.rollback()

    assert not await victim.is_processed("t", "evt_1")  # the pool replaced the dead connection
    assert await victim.outbox_rows(include_done=True) == []
    ledger = await victim.ledger_row("t")
    assert ledger is not None
    assert ledger.last_processed_event_id == "evt_0"
    # Nothing half-written means the retry is clean: the event is new, once.
    assert (await victim.accept_event("t", "evt_1", [delivery], now=T0 + 2 * S)).new
    assert len(await victim.outbox_rows()) == 1


# -- migrations, isolation, availability --------------------------------------------------------


async def test_migrations_run_concurrently_from_two_processes_worth_of_pools(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    schema = f"mig_{uuid.uuid4().hex[:12]}"  # not created yet: migrate() creates it
    a, b, c = (stores(schema=schema) for _ in range(3))
    try:
        await asyncio.gather(a.migrate(), b.migrate(), c.migrate())
        versions = await a.applied_migrations()
        assert versions == [1, 2, 3, 4, 5, 6]
        await b.migrate()
        assert await b.applied_migrations() == versions
        conn = await psycopg.AsyncConnection.connect(pg_database.url, autocommit=True)
        async with conn:
            await conn.execute(
                sql.SQL(
                    "UPDATE {}.reliability_migrations SET checksum = 'x' WHERE version = 2"
                ).format(sql.Identifier(schema))
            )
        with pytest.raises(StoreError, match=r"0002_processed_events\.sql was changed"):
            await a.migrate()
    finally:
        for s in (a, b, c):
            await s.close()
        conn = await psycopg.AsyncConnection.connect(pg_database.url, autocommit=True)
        async with conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


async def test_schemas_isolate_stores(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    schema = f"iso_{uuid.uuid4().hex[:12]}"
    mine, other = stores(), stores(schema=schema)
    try:
        await mine.migrate()
        await other.migrate()
        assert (await mine.accept_event("t", "e", [], now=T0)).new
        # A separate schema: new there too.
        assert (await other.accept_event("t", "e", [], now=T0)).new
        assert not (await other.accept_event("t", "e", [], now=T0)).new
    finally:
        await other.close()
        conn = await psycopg.AsyncConnection.connect(pg_database.url, autocommit=True)
        async with conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


async def test_times_are_parameters_not_the_server_clock(
    pg_database: PgDatabase, stores: Callable[..., PostgresStore]
) -> None:
    store = stores()
    await store.migrate()
    past = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    delivery = NewDelivery("t", "wf", {}, "k", "evt_1")
    (oid,) = (await store.accept_event("t", "evt_1", [delivery], now=past)).outbox_ids
    assert await store.claim_due(1, now=past - S, lease=LEASE) == []
    [row] = await store.claim_due(1, now=past, lease=LEASE)
    assert isinstance(row, OutboxRow)
    assert (row.created_at, row.locked_until) == (past, past + LEASE)
    assert await store.complete(oid, str(row.lease_token), now=past)
    assert await scalar(pg_database, "SELECT done_at FROM outbox") == past


async def test_an_unreachable_server_is_store_unavailable() -> None:
    store = open_postgres("postgresql://postgres@127.0.0.1:1/test", pool_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable, match="postgres unavailable"):
            await store.ping()
    finally:
        await store.close()


async def test_open_store_routes_postgres_urls(pg_database: PgDatabase) -> None:
    store = open_store(pg_database.url, schema=pg_database.schema, max_size=2)
    try:
        assert isinstance(store, PostgresStore)
        await store.migrate()
        await store.ping()
        assert store.schema == pg_database.schema
    finally:
        await store.close()


async def test_fleet_slots_hold_a_tenant_limit_across_stores_and_expire(
    stores: Callable[..., PostgresStore],
) -> None:
    a, b = stores(), stores()
    await a.migrate()
    until = T0 + LEASE
    # Three handles (processes) race for a limit of 2: exactly two win.
    got = await asyncio.gather(
        *(s.slot_acquire("t", 2, now=T0, until=until) for s in (a, b, stores()))
    )
    held = [g for g in got if g is not None]
    assert len(held) == 2
    assert await a.slot_acquire("t", 2, now=T0, until=until) is None
    await check_slots_free_and_expire(a, b, held, now=T0, until=until, lease=LEASE)
