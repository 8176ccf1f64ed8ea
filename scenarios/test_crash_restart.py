"""Crash points: kill the dispatcher mid-delivery, restart a fresh one, lose nothing."""

from __future__ import annotations

from harness.chaos.invariants import check_run
from harness.sim import simulate
from harness.sim.scenario import find_scenario


def test_crash_restart_scenario_loses_nothing() -> None:
    run = simulate(find_scenario("crash-restart"))
    results = check_run(run)
    assert all(r.passed for r in results), [r.details for r in results if not r.passed]
    r = run.records
    assert len(r.crashes) == 3
    assert sum(killed for _, _, killed in r.crashes) > 0, "crashes must hit in-flight work"
    assert run.figures["refused_while_down"] > 0
    assert run.figures["delivered"] == run.figures["deliveries_enqueued"]
    assert len(r.checkpoints) >= 2 * len(r.crashes)
    instances = {i for _, i, _ in r.events}
    assert instances == {1, 2, 3, 4}
    keys = {e.idempotency_key for e in r.journal}
    assert None not in keys
