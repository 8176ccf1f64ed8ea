"""Several service instances on one store: the fleet-wide per-tenant limit and the duplicate
accounting hold in the `fleet` scenario, and each checker fails when its bug is injected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from harness.chaos.invariants import check_run
from harness.chaos.invariants.double import check_no_double_processing
from harness.sim import Hooks, simulate
from harness.sim.scenario import find_scenario
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from scenarios.conftest import make


def test_fleet_scenario_holds_every_invariant_with_duplicates_explained() -> None:
    scenario = find_scenario("fleet")
    run = simulate(scenario)
    results = check_run(run)
    assert all(r.passed for r in results), [r.details for r in results if not r.passed]
    r = run.records
    # Every instance made calls, and each crashed on its own schedule, killing work in flight.
    assert set(r.callers) == {1, 2, 3}
    assert sorted(i for i, _, _ in r.downtime) == [1, 1, 2, 3]
    assert all(killed > 0 for _, _, killed in r.crashes)
    # Restarted dispatchers are numbered after the three first ones.
    assert {n for _, n, _ in r.events} == {1, 2, 3, 4, 5, 6, 7}
    figures = run.figures
    assert figures["instances"] == 3
    assert figures["delivered"] == figures["deliveries_enqueued"]
    # Duplicates happened, each with its cause, and none unexplained.
    assert (figures["n8n_duplicate_sends"] or 0) > 0
    assert (figures["duplicate_sends_crash"] or 0) > 0
    assert "duplicate_sends_unexplained" not in figures
    causes = sum(v or 0 for k, v in figures.items() if k.startswith("duplicate_sends_"))
    assert causes == figures["n8n_duplicate_sends"]
    again = simulate(scenario)
    assert again.trace_hash == run.trace_hash


def _in_process_limit_only(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
    """The bug of issue 16: each instance keeps the tenant's limit by itself."""
    return Dispatcher(replace(settings, reliability_fleet_limit=False), *args, **kwargs)


def test_quotas_catches_a_fleet_that_keeps_the_limit_per_instance() -> None:
    scenario = find_scenario("fleet")
    assert check_run(simulate(scenario), ["quotas"])[0].passed
    run = simulate(scenario, hooks=Hooks(dispatcher=_in_process_limit_only))
    (result,) = check_run(run, ["quotas"])
    assert not result.passed
    assert result.counterexample is not None
    assert "above the tenant's limit" in result.counterexample.message


class _SendsTwice(httpx.AsyncBaseTransport):
    """An HTTP client that posts every request a second time after a 2xx: duplicates that no
    crash, lease or timeout explains."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        first = await self._inner.handle_async_request(request)
        await first.aread()
        if not first.is_success:
            return first
        return await self._inner.handle_async_request(request)


def _sends_twice(*args: Any, **kwargs: Any) -> Dispatcher:
    return Dispatcher(*args, **{**kwargs, "transport": _SendsTwice(kwargs["transport"])})


def test_no_double_processing_catches_a_duplicate_without_a_cause() -> None:
    scenario = make(instances=3, traffic={"events": 60, "duration": 600})
    clean = simulate(scenario)
    assert check_run(clean, ["no_double_processing"])[0].passed
    run = simulate(scenario, hooks=Hooks(dispatcher=_sends_twice))
    (result,) = check_run(run, ["no_double_processing"])
    assert not result.passed
    # Only the duplicate accounting objects: each call ended before its copy was sent, and
    # each delivery completed once.
    violations = check_no_double_processing(run, {}).violations
    assert violations
    assert all("with no crash, lost lease or timeout" in v.message for v in violations)
    sent = run.figures["n8n_duplicate_sends"]
    assert sent is not None
    assert sent > 0
    assert run.figures["duplicate_sends_unexplained"] == sent


@pytest.mark.postgres
def test_the_fleet_runs_alike_on_postgres_with_its_slot_table(pg_url: str) -> None:
    """The instances share PostgreSQL's `tenant_slots` there: the same trace as on SQLite."""
    scenario = find_scenario("fleet")
    on_pg = simulate(scenario, store_url=pg_url)
    assert all(r.passed for r in check_run(on_pg)), [r.details for r in check_run(on_pg)]
    assert on_pg.trace_hash == simulate(scenario).trace_hash
