"""Under load: 100 tenants, 100,000 events, 24 simulated hours, outages and 429 storms."""

from __future__ import annotations

import pytest

from harness.chaos.results import run_scenario
from harness.sim.scenario import find_scenario


@pytest.mark.slow
def test_load_24h_every_invariant_holds() -> None:
    outcome = run_scenario(find_scenario("load-24h"))
    broken = [f"{i.name}: {i.details}" for i in outcome.invariants if not i.passed]
    assert not broken, broken
    f = outcome.runs[0].figures
    assert f["tenants"] >= 100
    assert f["events_generated"] >= 100_000
    assert outcome.simulated_seconds >= 86_400
    assert f["breaker_opens"] > 0
    assert f["retries"] > 1000
    assert f["delivered"] >= 0.95 * f["deliveries_enqueued"]
