"""DLQ TTL: visible until exactly the TTL, invisible after, purge counts, manual retry."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from harness.chaos.invariants import check_run
from harness.sim import Hooks, simulate
from harness.sim.scenario import find_scenario
from harness.vclock import VirtualClock
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.errors import ErrorCode
from reliability.store import DlqFilter, NewDelivery, PostgresStore, SqliteStore, Store
from scenarios.conftest import make

TTL = timedelta(hours=1)


async def _dead_letter(store: Store, clock: VirtualClock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        d = NewDelivery("t1", "weekly-recap", {"i": i}, f"t1:evt_{i}:weekly-recap", f"evt_{i}")
        (oid,) = (await store.accept_event("t1", f"evt_{i}", [d], now=clock.now())).outbox_ids
        row = await store.claim(oid, now=clock.now(), lease=timedelta(seconds=60))
        assert row is not None
        assert row.lease_token is not None
        entry = await store.move_to_dlq(
            oid, row.lease_token, error_code=ErrorCode.HTTP_5XX, message="boom",
            now=clock.now(), ttl=TTL,
        )  # fmt: skip
        assert entry is not None
        ids.append(entry.id)
        await clock.sleep(1.0)
    return ids


async def test_visible_until_exactly_the_ttl(sim_store: Store, virtual_clock: VirtualClock) -> None:
    (entry_id,) = await _dead_letter(sim_store, virtual_clock, 1)
    entry = await sim_store.dlq_get(entry_id, now=virtual_clock.now())
    assert entry is not None
    just_before = entry.expires_at - timedelta(microseconds=1)
    assert await sim_store.dlq_get(entry_id, now=just_before) is not None
    assert (await sim_store.dlq_list(DlqFilter(), now=just_before)).entries
    assert await sim_store.dlq_get(entry_id, now=entry.expires_at) is None
    assert not (await sim_store.dlq_list(DlqFilter(), now=entry.expires_at)).entries
    assert await sim_store.dlq_depth(now=entry.expires_at) == {}
    assert await sim_store.dlq_retry(entry_id, now=entry.expires_at) is None


async def test_purge_removes_exactly_the_expired(
    sim_store: Store, virtual_clock: VirtualClock
) -> None:
    ids = await _dead_letter(sim_store, virtual_clock, 5)  # one per second
    first = await sim_store.dlq_get(ids[0], now=virtual_clock.now())
    assert first is not None
    at = first.expires_at + timedelta(seconds=2)  # the first three have expired
    assert await sim_store.dlq_purge_expired(now=at) == 3
    assert await sim_store.dlq_purge_expired(now=at) == 0
    left = await sim_store.dlq_list(DlqFilter(), now=first.created_at)
    assert sorted(e.id for e in left.entries) == sorted(ids[3:])


async def test_manual_retry_redispatches_and_records(
    sim_store: SqliteStore | PostgresStore, virtual_clock: VirtualClock
) -> None:
    (entry_id,) = await _dead_letter(sim_store, virtual_clock, 1)
    seen: list[str] = []

    import httpx

    class _N8n(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.headers["Idempotency-Key"])
            return httpx.Response(200, json={"ok": True})

    d = Dispatcher(
        Settings(n8n_webhook_url="http://n8n.test/webhook"),
        sim_store, virtual_clock, transport=_N8n(), rng=random.Random(1),
    )  # fmt: skip
    new_id = await d.retry_dead_letter(entry_id)
    assert new_id is not None
    assert seen == ["t1:evt_0:weekly-recap"]
    assert await sim_store.dlq_get(entry_id, now=virtual_clock.now()) is None
    rows = [r for r in await sim_store.outbox_rows(include_done=True) if r.id == new_id]
    assert rows
    assert rows[0].retry_count == 1
    assert rows[0].done_at is not None
    await d.aclose()


def test_the_dlq_ttl_scenario_holds() -> None:
    run = simulate(find_scenario("dlq-ttl"))
    (result,) = check_run(run, ["dlq_ttl"])
    assert result.passed, result.details
    assert run.figures["dlq_purged"] > 50
    assert run.figures["dlq_retried"] > 5
    assert len(run.records.probes) > 100


class _TtlBlindStore:
    """A store whose reads ignore expiry (the bug docs/design.md rules out)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def dlq_get(self, entry_id: str, *, now: Any) -> Any:
        return await self._inner.dlq_get(entry_id, now=now - timedelta(days=365))


def test_the_checker_catches_entries_visible_after_their_ttl() -> None:
    scenario = make(
        settings={"N8N_DLQ_TTL_HOURS": 0.05, "N8N_MAX_RETRIES": 0},
        n8n={"faults": {"rules": [{"status": {"500": 0.3}}]}},
        dlq={"probes": 5},
    )
    run = simulate(scenario, hooks=Hooks(store=lambda s: _TtlBlindStore(s)))
    (result,) = check_run(run, ["dlq_ttl"])
    assert not result.passed
    assert result.counterexample is not None
    assert "visible at its expires_at" in result.counterexample.message
