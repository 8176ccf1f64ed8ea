"""Bounded tables over a simulated day: every table's row count is sampled, and the purges keep
the outbox (delivered rows past their retention) and the DLQ (entries past their TTL) bounded."""

from __future__ import annotations

from harness.chaos.invariants import check_run
from harness.sim import simulate
from harness.sim.operators import TABLE_ROWS_FROM
from reliability.store import TABLES
from scenarios.conftest import make

_DAY = {"events": 2400, "duration": 86_400, "shape": "uniform"}


def _peaks(run_rows: list[tuple[float, dict[str, int]]], after: float) -> dict[str, int]:
    return {t: max(c[t] for at, c in run_rows if at >= after) for t in TABLES}


def test_a_day_long_run_counts_every_table_and_the_purges_keep_them_bounded() -> None:
    scenario = make(
        traffic=_DAY,
        settings={"RELIABILITY_OUTBOX_RETENTION_HOURS": 2, "N8N_DLQ_TTL_HOURS": 1},
        n8n={"faults": {"rules": [{"status": {"400": 0.05}}]}},
        settle=600,
    )
    run = simulate(scenario)
    assert all(r.passed for r in check_run(run)), [r.details for r in check_run(run)]
    rows = run.records.table_rows
    assert len(rows) == 97
    assert all(set(counts) == set(TABLES) for _, counts in rows)
    series = run.series["table_rows"]
    assert {p["table"] for p in series} == set(TABLES)
    # After the first hours the outbox holds at most its retention (2 h) plus one cleanup
    # interval (1 h) of deliveries, and the DLQ its TTL (1 h) plus one interval of dead
    # letters (with 20% and 100% slack for the spread of arrivals), however long the day runs
    # on; processed-event ids are kept three days, so they grow with the events.
    f = run.figures
    per_hour = (f["deliveries_enqueued"] or 0) / 24
    dead_per_hour = (f["dead_lettered"] or 0) / 24
    peaks = _peaks(rows, after=4 * 3600)
    assert peaks["outbox"] <= 1.2 * per_hour * 3
    assert peaks["n8n_dlq"] <= 2 * dead_per_hour * 2
    final = rows[-1][1]
    assert final["processed_events"] == run.figures["events_accepted"]
    assert final["outbox"] < (f["delivered"] or 0) / 4
    assert final["tenant_slots"] == 0  # one instance: its in-process limiter alone


def test_the_same_day_without_purges_grows_its_outbox_with_the_events() -> None:
    """The figure shows what it claims: with a retention longer than the run nothing is
    purged, and the same samples show the outbox growing all day."""
    scenario = make(
        traffic=_DAY,
        settings={"RELIABILITY_OUTBOX_RETENTION_HOURS": 48},
        settle=600,
    )
    rows = simulate(scenario).records.table_rows
    assert rows[-1][1]["outbox"] > 2000
    assert _peaks(rows, after=4 * 3600)["outbox"] > 1.2 * 100 * 3


def test_shorter_runs_record_no_table_rows() -> None:
    run = simulate(make())
    assert run.scenario.end < TABLE_ROWS_FROM
    assert run.records.table_rows == []
    assert run.series["table_rows"] == []
