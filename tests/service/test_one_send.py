"""One send per delivery on real Postgres (issue 16, Deliver 3): a database blip after n8n
answered does not send again, and a slow-dripping answer never outlives its row's lease."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from service_support import CRON, SECRETS, Service, event_body, make_settings, stripe_header

from harness.testing.postgres import PgDatabase
from reliability.app import create_app
from reliability.clock import Clock, SystemClock
from reliability.config import Settings
from reliability.intake import Intake

pytestmark = pytest.mark.postgres


class SlowN8n:
    """n8n on an httpx transport: every call waits until `release` is set (or `latency`), and
    answers 200, dripping its body in `chunks` pieces `drip` seconds apart. It counts calls per
    idempotency key and the most calls for one key in flight at once."""

    def __init__(self, *, chunks: int = 1, drip: float = 0.0) -> None:
        self.release = asyncio.Event()
        self.chunks = chunks
        self.drip = drip
        self.calls: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak_per_key = 0
        self.on_all_in: tuple[int, asyncio.Event] | None = None

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        self.calls[key] += 1
        self.in_flight[key] += 1
        self.peak_per_key = max(self.peak_per_key, self.in_flight[key])
        if self.on_all_in is not None and sum(self.in_flight.values()) >= self.on_all_in[0]:
            self.on_all_in[1].set()
        await self.release.wait()
        return httpx.Response(200, content=self._body(key))

    async def _body(self, key: str) -> AsyncIterator[bytes]:
        try:
            for _ in range(self.chunks):
                await asyncio.sleep(self.drip)
                yield b" "
            yield b'{"message":"Workflow was started"}'
        finally:
            self.in_flight[key] -= 1

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)


async def start(
    pg_database: PgDatabase, settings: Settings, n8n: SlowN8n, clock: Clock, name: str
) -> Service:
    store = pg_database.open_store(max_size=4, application_name=name)
    await store.migrate()
    app = create_app(settings, store, clock, transport=n8n.transport, instance=name)
    return Service(app, store, clock)  # type: ignore[arg-type]


async def enqueue(svc: Service, count: int) -> None:
    """Rows for a drain (the intake alone, without the immediate delivery)."""
    intake = Intake(svc.app.state.service.settings, svc.store, svc.clock)
    for i in range(count):
        body = event_body(f"evt_{i}")
        assert (await intake.handle("acme", stripe_header(body, SECRETS[0]), body)).outbox_ids


async def drain(svc: Service) -> dict[str, Any]:
    response = await svc.client.post(f"/api/cron/drain?secret={CRON}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def terminate(pg_database: PgDatabase, application_name: str) -> int:
    """pg_terminate_backend for every connection of one application (this test's service)."""
    with psycopg.connect(pg_database.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_terminated_connections_while_calls_are_in_flight_send_once(
    pg_database: PgDatabase,
) -> None:
    name = f"one-send-{uuid.uuid4().hex[:8]}"
    n8n = SlowN8n()
    all_in = asyncio.Event()
    n8n.on_all_in = (5, all_in)  # the tenant's concurrency limit: five calls at once
    svc = await start(pg_database, make_settings(), n8n, SystemClock(), name)
    try:
        await enqueue(svc, 5)
        drained = asyncio.create_task(drain(svc))
        await asyncio.wait_for(all_in.wait(), 10)
        # Every pooled connection of the service dies while n8n holds the five calls.
        assert await asyncio.to_thread(terminate, pg_database, name) >= 1
        n8n.release.set()
        report = await asyncio.wait_for(drained, 30)
        assert (report["delivered"], report["failed"], report["internal_errors"]) == (5, 0, 0)
        assert set(n8n.calls.values()) == {1}  # each delivery sent once
        assert await svc.store.outbox_rows() == []
        metrics = (await svc.client.get("/metrics")).text
        assert "reliability_duplicate_sends_total{" not in metrics
    finally:
        await svc.close()


async def test_a_dripping_answer_ends_at_the_deadline_not_after_the_lease(
    pg_database: PgDatabase,
) -> None:
    # lease = connect + 2 * read + margin = 0.9 s; the call's deadline = connect + read = 0.4 s.
    settings = make_settings(
        n8n_connect_timeout_ms=100,
        n8n_read_timeout_ms=300,
        reliability_lease_margin_ms=200,
        n8n_max_retries=1,
    )
    # A 2xx whose body drips a byte every 0.2 s for 2 s: no read ever waits 0.3 s.
    n8n = SlowN8n(chunks=10, drip=0.2)
    n8n.release.set()
    clock = SystemClock()
    a = await start(pg_database, settings, n8n, clock, f"drip-a-{uuid.uuid4().hex[:8]}")
    b = await start(pg_database, settings, n8n, clock, f"drip-b-{uuid.uuid4().hex[:8]}")
    try:
        await enqueue(a, 1)

        async def keep_draining(svc: Service) -> list[dict[str, Any]]:
            reports = []
            for _ in range(100):  # until the row is in the DLQ (a few seconds)
                if not await svc.store.outbox_rows():
                    break
                reports.append(await drain(svc))
                await asyncio.sleep(0.02)
            return reports

        seen = [r for rs in await asyncio.gather(*map(keep_draining, (a, b))) for r in rs]
        assert n8n.peak_per_key == 1  # never two calls for one delivery at once
        # Each call ended at its deadline (TIMEOUT) while its lease held: the first try and
        # one retry, then the DLQ; no instance ever re-claimed a row in flight.
        assert list(n8n.calls.values()) == [2]
        assert sum(r["lost_lease"] for r in seen) == 0
        assert (sum(r["retried"] for r in seen), sum(r["dead_lettered"] for r in seen)) == (1, 1)
    finally:
        await a.close()
        await b.close()
