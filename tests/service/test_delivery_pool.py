"""The service's delivery pool on real PostgreSQL: fair turns across tenants, the tenant limit,
a full queue drained without a cron, group-committed completions, and what shutdown leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from service_support import ManualClock, make_settings

from harness.testing.postgres import PgDatabase
from reliability.config import Settings, TenantConfig
from reliability.delivery import DeliveryPool
from reliability.dispatch import Dispatcher
from reliability.store import NewDelivery, OutboxRow, PostgresStore

pytestmark = pytest.mark.postgres


class Gate:
    """n8n answering 200, each call held until the test opens the gate (or at once when open);
    records the order of calls and the peak of concurrent calls per tenant."""

    def __init__(self, *, open_: bool = True) -> None:
        self.opened = asyncio.Event()
        if open_:
            self.opened.set()
        self.tenants: list[str] = []
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.arrived: asyncio.Queue[str] = asyncio.Queue()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        tenant = request.headers["X-Tenant-Id"]
        self.tenants.append(tenant)
        self.now[tenant] = self.now.get(tenant, 0) + 1
        self.peak[tenant] = max(self.peak.get(tenant, 0), self.now[tenant])
        self.arrived.put_nowait(tenant)
        try:
            await self.opened.wait()
        finally:
            self.now[tenant] -= 1
        return httpx.Response(200, json={"message": "Workflow was started"})


def settings(limit: int = 2) -> Settings:
    tenants = {t: TenantConfig(t, concurrency_limit=limit) for t in ("busy", "quiet")}
    return make_settings(tenants=tenants)


Make = Callable[..., Any]


@pytest.fixture
async def parts(pg_database: PgDatabase) -> AsyncIterator[Make]:
    """`await parts(gate, workers=.., capacity=..)`: a store, dispatcher and pool on the schema."""
    made: list[Parts] = []

    async def make(gate: Gate, **pool: Any) -> Parts:
        store = pg_database.open_store(max_size=4)
        await store.migrate()
        clock = ManualClock()
        dispatcher = Dispatcher(
            settings(), store, clock, transport=httpx.MockTransport(gate.handle)
        )
        made.append(
            Parts(store, dispatcher, DeliveryPool(dispatcher, clock, **pool), clock, pg_database)
        )
        return made[-1]

    yield make
    for p in made:
        await p.pool.close(grace=1.0)
        await p.dispatcher.aclose()
        await p.store.close()


@dataclass
class Parts:
    store: PostgresStore
    dispatcher: Dispatcher
    pool: DeliveryPool
    clock: ManualClock
    db: PgDatabase

    def held_slots(self) -> int:
        with self.db.connect() as conn:
            row = conn.execute("SELECT count(*) FROM tenant_slots WHERE token IS NOT NULL")
            return int(row.fetchone()[0])  # type: ignore[index]

    async def claimed(self, tenant: str, n: int) -> list[OutboxRow]:
        """`n` new events of `tenant`, accepted with their rows claimed (as the intake does)."""
        rows: list[OutboxRow] = []
        for i in range(n):
            event = f"evt_{tenant}_{i}"
            key = f"{tenant}:{event}:weekly-recap"
            delivery = NewDelivery(tenant, "weekly-recap", {"event_id": event}, key, event)
            accepted = await self.store.accept_event(
                tenant, event, [delivery], now=self.clock.now(), lease=self.dispatcher.lease
            )
            rows += accepted.claimed
        return rows


async def test_tenants_take_turns_so_a_backlog_does_not_starve_a_quiet_tenant(parts: Make) -> None:
    gate = Gate()
    p = await parts(gate, workers=1)
    store, pool = p.store, p.pool
    busy = await p.claimed("busy", 12)
    quiet = await p.claimed("quiet", 2)
    pool.offer(busy)
    pool.offer(quiet)
    await pool.wait_idle()
    # One worker, round robin: the quiet tenant's rows go second and fourth, not after twelve.
    assert gate.tenants[:4] == ["busy", "quiet", "busy", "quiet"]
    assert len(await store.delivered_keys()) == 14
    assert await store.outbox_rows() == []


async def test_a_tenant_never_has_more_calls_in_flight_than_its_limit(parts: Make) -> None:
    gate = Gate(open_=False)
    p = await parts(gate, workers=16)
    store, pool = p.store, p.pool
    pool.offer(await p.claimed("busy", 10))
    for _ in range(2):
        await gate.arrived.get()
    # Two calls reached n8n: every worker has had its turn at the queue by now (taking a row
    # needs no I/O), and the other 14 found no row of a tenant under its limit.
    assert gate.now["busy"] == 2
    assert pool.stats().in_flight == 2
    assert pool.stats().queued == 8
    gate.opened.set()
    await pool.wait_idle()
    assert gate.peak == {"busy": 2}
    assert len(await store.delivered_keys()) == 10


async def test_a_full_queue_is_drained_by_the_pool_itself_without_a_cron(parts: Make) -> None:
    gate = Gate()
    p = await parts(gate, workers=2, capacity=4)
    store, pool = p.store, p.pool
    pool.offer(await p.claimed("busy", 15))
    await pool.wait_idle()
    stats = pool.stats()
    assert stats.released == 11  # beyond the capacity: given back, due at once
    assert stats.refilled == 11  # and claimed again by the pool, no drain called
    assert len(await store.delivered_keys()) == 15
    assert await store.outbox_rows() == []
    assert sorted(gate.tenants) == ["busy"] * 15  # each sent once


async def test_completions_arriving_together_share_one_statement(parts: Make) -> None:
    p = await parts(Gate())
    rows = await p.claimed("busy", 12)
    before = p.store.batch_figures()
    done = await asyncio.gather(
        *(p.store.complete(r.id, r.lease_token or "", now=p.clock.now()) for r in rows)
    )
    figures = p.store.batch_figures()
    assert done == [True] * 12
    # The first runs at once, alone; the eleven that came while it ran share the next one.
    assert figures["complete_statements"] - before["complete_statements"] == 2
    assert figures["complete_rows"] - before["complete_rows"] == 12
    assert len(await p.store.delivered_keys()) == 12


async def test_a_completion_with_a_lost_lease_fails_alone_in_its_batch(parts: Make) -> None:
    p = await parts(Gate())
    store, now = p.store, p.clock.now()
    rows = await p.claimed("busy", 3)
    tokens = [r.lease_token or "" for r in rows]
    tokens[1] = "not-the-lease"
    done = await asyncio.gather(
        *(store.complete(r.id, t, now=now) for r, t in zip(rows, tokens, strict=True))
    )
    assert done == [True, False, True]
    assert [r.id for r in await store.outbox_rows()] == [rows[1].id]


async def test_shutdown_lets_calls_finish_and_releases_queued_rows(parts: Make) -> None:
    gate = Gate(open_=False)
    p = await parts(gate, workers=1)
    store, pool = p.store, p.pool
    rows = await p.claimed("busy", 4)
    pool.offer(rows)
    await gate.arrived.get()
    assert gate.tenants == ["busy"]  # one call in flight, three queued
    await pool.close(grace=0.2)  # the call outlives the grace: cancelled, its row stays leased
    left = {r.id: r for r in await store.outbox_rows()}
    assert set(left) == {r.id for r in rows}
    assert left[rows[0].id].lease_token == rows[0].lease_token  # comes back by lease
    for row in rows[1:]:  # released: due at once for any instance's drain
        assert left[row.id].lease_token is None
        assert left[row.id].locked_until is None
    assert pool.stats().released == 3
    pool.offer(rows[1:])  # closed: nothing is taken any more
    assert pool.stats().queued == 0


async def test_fleet_slots_pass_between_calls_of_a_burst_and_are_all_freed_after_it(
    parts: Make,
) -> None:
    gate = Gate()
    p = await parts(gate, workers=4)
    p.pool.offer(await p.claimed("busy", 20))
    await p.pool.wait_idle()
    figures = p.store.batch_figures()
    assert len(await p.store.delivered_keys()) == 20
    assert gate.peak["busy"] <= 2
    # Freed slots went to the burst's next calls, not back to the table after every call...
    assert figures["release_slots"] < 20
    # ...and the burst's last call gave every one of them back.
    assert p.held_slots() == 0
