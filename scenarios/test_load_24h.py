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
    # Bounded tables: delivered rows are kept 4 h, so after the first hours the outbox never
    # holds more than a fraction of the day's deliveries; the DLQ stays small.
    rows = outcome.runs[0].series["table_rows"]
    later = [p for p in rows if p["t"] >= 8 * 3600]
    outbox = max(p["rows"] for p in later if p["table"] == "outbox")
    assert outbox < 0.4 * f["deliveries_enqueued"]
    assert max(p["rows"] for p in later if p["table"] == "n8n_dlq") < 0.01 * f["delivered"]
