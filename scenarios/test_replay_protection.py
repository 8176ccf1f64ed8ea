"""Replay protection on the embedded store and on real Postgres, and seed versus fixed."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from harness.chaos.invariants import check_run
from harness.chaos.results import run_scenario
from harness.fakes.stripe import FakeStripe, sign
from harness.sim import Hooks, SeedLedgerGuard, simulate
from harness.sim.scenario import find_scenario
from harness.testing.postgres import pg_url
from harness.vclock import VirtualClock
from reliability.config import Settings, TenantConfig
from reliability.intake import Intake, IntakeCode
from reliability.store import AcceptResult, Store
from scenarios.conftest import make

SECRET = "whsec_suite"
SETTINGS = Settings(tenants={"t1": TenantConfig("t1", stripe_webhook_secrets=(SECRET,))})


def _stripe(clock: VirtualClock) -> FakeStripe:
    return FakeStripe(clock=clock, seed=3, secrets={"t1": SECRET})


async def test_duplicates_and_out_of_order(sim_store: Store, virtual_clock: VirtualClock) -> None:
    intake, fs = Intake(SETTINGS, sim_store, virtual_clock), _stripe(virtual_clock)
    events = fs.story("t1")
    order = [4, 0, 2, 1, 3, 0, 4, 2]
    codes = []
    for i in order:
        req = fs.signed(events[i], tenant="t1")
        codes.append(
            (await intake.handle("t1", dict(req.headers)["Stripe-Signature"], req.body)).code
        )
        await virtual_clock.sleep(1)
    assert codes.count(IntakeCode.ACCEPTED) == 5
    assert codes[5:] == [IntakeCode.DUPLICATE] * 3


async def test_concurrent_duplicates_process_once(
    sim_store: Store, virtual_clock: VirtualClock
) -> None:
    intake, fs = Intake(SETTINGS, sim_store, virtual_clock), _stripe(virtual_clock)
    req = fs.signed(fs.event("invoice.paid", tenant="t1"), tenant="t1")
    header = dict(req.headers)["Stripe-Signature"]
    results = await asyncio.gather(*(intake.handle("t1", header, req.body) for _ in range(16)))
    assert [r.code for r in results].count(IntakeCode.ACCEPTED) == 1
    assert sum(len(r.outbox_ids) for r in results) == 1


async def test_stale_and_resigned(sim_store: Store, virtual_clock: VirtualClock) -> None:
    intake, fs = Intake(SETTINGS, sim_store, virtual_clock), _stripe(virtual_clock)
    event = fs.event("checkout.session.completed", tenant="t1")
    body = fs.body(event)
    captured = sign(body, SECRET, int(virtual_clock.now().timestamp()))
    assert (await intake.handle("t1", captured, body)).code is IntakeCode.ACCEPTED
    await virtual_clock.sleep(301)
    assert (await intake.handle("t1", captured, body)).code is IntakeCode.STALE_TIMESTAMP
    fresh = sign(body, SECRET, int(virtual_clock.now().timestamp()))
    assert (await intake.handle("t1", fresh, body)).code is IntakeCode.DUPLICATE
    forged = sign(body, "whsec_wrong", int(virtual_clock.now().timestamp()))
    assert (await intake.handle("t1", forged, body)).code is IntakeCode.BAD_SIGNATURE


def test_replay_scenario_holds_on_the_embedded_store() -> None:
    run = simulate(find_scenario("replay-protection"))
    results = {r.name: r for r in check_run(run)}
    assert all(r.passed for r in results.values()), [r.details for r in results.values()]
    assert run.figures["duplicates_refused"] > 500
    kinds = {s.kind for s in run.records.sends}
    assert {"duplicate", "replay", "resigned", "burst", "bad:tampered"} <= kinds


@pytest.mark.postgres
def test_replay_scenario_holds_on_postgres(pg_url: str) -> None:
    scenario = make(
        tenants=[{"id": "t-{i}", "count": 3}],
        traffic={"events": 80, "duration": 300},
        stripe={
            "duplicates": 0.3, "out_of_order": 0.3, "replays": 0.2, "resigned_old": 0.2,
            "resigned_delay": [400, 900], "bad_signatures": 0.1, "concurrent_duplicates": 0.1,
        },
        settle=900,
    )  # fmt: skip
    outcome = run_scenario(scenario, store_url=pg_url)
    assert outcome.store == "postgres"
    assert outcome.passed, [i.details for i in outcome.invariants if not i.passed]
    assert outcome.runs[0].figures["events_accepted"] == 80


def test_step06_ledger_guard_versus_processed_set() -> None:
    guard = SeedLedgerGuard()
    assert guard.admit("t", "evt_b", 200)
    assert not guard.admit("t", "evt_a", 100)  # legitimate but older: dropped
    assert guard.admit("t", "evt_c", 200)
    assert guard.admit("t", "evt_b", 200)  # a replay of b, accepted again
    outcome = run_scenario(find_scenario("replay-comparison"))
    f = outcome.runs[0].figures
    assert f["fixed_replays_accepted"] == 0
    assert f["fixed_legitimate_dropped"] == 0
    assert f["step06_legitimate_dropped"] > 100
    assert f["step06_replays_accepted"] > 0
    assert outcome.comparison is not None
    assert len(outcome.comparison["rows"]) == 2


class _NoDedupe:
    """A store that forgets it has seen an event (enqueues duplicates again)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self._again = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def accept_event(self, tenant_id: str, event_id: str, deliveries: Any, **kw: Any) -> Any:
        result = await self._inner.accept_event(tenant_id, event_id, deliveries, **kw)
        if result.new:
            return result
        self._again += 1  # a ledger id never seen, so the deliveries are written again
        again = f"{event_id}#again-{self._again}"
        result = await self._inner.accept_event(tenant_id, again, deliveries, now=kw["now"])
        return AcceptResult(new=True, outbox_ids=result.outbox_ids)


def test_the_checker_catches_double_processing() -> None:
    scenario = make(stripe={"duplicates": 0.3})
    run = simulate(scenario, hooks=Hooks(store=lambda s: _NoDedupe(s)))
    (result,) = check_run(run, ["no_double_processing"])
    assert not result.passed
    assert result.counterexample is not None
    assert result.counterexample.event_id is not None


_ = (random, pg_url)
