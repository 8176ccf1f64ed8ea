"""Every generated sentence is true of the numbers beside it (issue 19, Deliver 3)."""

from __future__ import annotations

from pathlib import Path

from harness.chaos.results import budget_words
from harness.report.analysis import arrival_rates
from harness.report.findings import findings
from harness.report.model import ChaosResults, Comparison, Report, Scenario, TimePoint


def _row(strategy: str, budget: bool, calls: int, dead: int) -> list[object]:
    # strategy, budget, peak arrivals, peak retries, calls, time, delivered, dead, retries
    return [strategy, budget, 600, 500, calls, None, 600 - dead, dead, calls - 600]


def test_the_budget_sentence_gives_both_sides_and_blames_nothing_on_the_budget() -> None:
    # Budget off, retries run out too: 60 dead letters for no jitter. A sentence saying every
    # dead letter with the budget on waits there because of the budget would be false.
    rows = [
        _row("none", False, 6000, 60),
        _row("none", True, 1600, 520),
        _row("full", False, 3500, 0),
        _row("full", True, 1600, 530),
    ]
    words = budget_words(rows)
    assert "calls average 1,600 per strategy (budget off: 4,750)" in words
    assert "525 deliveries per strategy end in the DLQ for a manual retry (budget off: 30)" in words
    assert "RETRY_BUDGET:" not in words
    assert budget_words([r for r in rows if r[1] is False]) == ""


def _herd_report(additive_calls: int) -> Report:
    columns = ("strategy", "budget", "n8n_calls")
    rows = (("none", False, 6000), ("additive", False, additive_calls), ("full", False, 3500))
    herd = Scenario(
        "herd", True, (), 2, "cmd", comparison=Comparison("herd", columns, rows, verdict="")
    )
    return Report((ChaosResults(Path("r.json"), "", {}, 1, "cmd", (herd,)),), ())


def test_the_jitter_finding_says_hardly_spreads_only_when_the_calls_show_it() -> None:
    close = next(f for f in findings(_herd_report(5900)) if f.key == "additive-jitter")
    assert close.title.endswith(
        "hardly spreads a herd (5,900 calls to n8n against no jitter's 6,000)"
    )
    apart = next(f for f in findings(_herd_report(3000)) if f.key == "additive-jitter")
    assert "hardly" not in apart.title
    assert "3,000 calls to n8n against no jitter's 6,000" in apart.title


def test_arrivals_in_lockstep_are_drawn_as_spikes_not_a_gliding_line() -> None:
    # No jitter retries at 10, 12, 16 and 24 s: only those 2 s buckets saw arrivals.
    recorded = [(10.0, 1200.0), (12.0, 600.0), (16.0, 600.0), (24.0, 550.0)]
    points = [TimePoint(t, v, "none", bucket=2.0) for t, v in recorded]
    ((label, bucket, rates),) = arrival_rates(points)
    assert (label, bucket) == ("none", 2.0)
    assert rates[:4] == [(10.0, 600.0), (12.0, 300.0), (14.0, 0.0), (16.0, 300.0)]
    assert rates[-2:] == [(24.0, 275.0), (26.0, 0.0)]  # it ends after the last arrival
    assert sum(v for _, v in rates) * bucket == sum(v for _, v in recorded)
    assert all(t % 2 == 0 for t, _ in rates)
