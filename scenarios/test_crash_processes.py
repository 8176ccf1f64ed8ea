"""Crash consistency on real processes (issue 6, item 6).

Two service instances on one Postgres schema, the fake n8n slow and failing behind them, and a
seeded schedule of SIGKILLs while Stripe-signed events arrive. After restarts and a drain to
completion: nothing lost, and duplicates at n8n only from the crashes, bounded by them, under
the delivery's own idempotency key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.live.crash import CrashConfig, kill_schedule, run_crash


def test_kill_schedule_is_seeded_and_inside_the_run() -> None:
    a = kill_schedule(5, 6, 10.0, 2)
    assert a == kill_schedule(5, 6, 10.0, 2)
    assert a != kill_schedule(6, 6, 10.0, 2)
    assert [t for t, _ in a] == sorted(t for t, _ in a)
    assert all(1.0 <= t <= 8.0 and i in (0, 1) for t, i in a)
    assert kill_schedule(5, 0, 10.0, 2) == []


@pytest.mark.postgres
@pytest.mark.slow
async def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    messages: list[str] = []
    config = CrashConfig(
        database_url=pg_url,
        out_dir=tmp_path,
        seed=11,
        kills=3,
        duration=6.0,
        rate=25.0,
        tenants=3,
    )
    outcome = await run_crash(config, log=messages.append)
    results = json.loads(outcome.results_path.read_text())
    invariants = {i["name"]: i for i in results["invariants"]}
    assert outcome.passed, outcome.table
    assert all(i["passed"] for i in invariants.values())
    assert {
        "every event eventually accepted",
        "nothing lost",
        "drained to completion",
        "duplicates at n8n bounded by crashes",
        "every duplicate send has a cause",
    } <= set(invariants)
    # Duplicates are a figure with their causes, each explained (the check above passed).
    duplicates = results["duplicates"]
    assert duplicates["total"] == sum(duplicates["by_cause"].values())
    assert "unexplained" not in duplicates["by_cause"]

    # The kills were real: three SIGKILLs, each of a live process, at least one with rows
    # under a lease (in flight or sleeping out a backoff) that the restart had to recover.
    kills = results["kills"]
    assert len(kills) == 3
    assert len({k["pid"] for k in kills}) == 3
    assert sum(1 for m in messages if "(SIGKILL)" in m) == 3
    assert any(k["rows_held"] > 0 for k in kills)
    assert results["events"]["accepted"] == int(6.0 * 25.0)
    # Everything accepted reached a final state at n8n or the DLQ; none is left pending.
    assert "0 pending" in invariants["nothing lost"]["details"]
    assert results["drain"]["elapsed_s"] < 120
