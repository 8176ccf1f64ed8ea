"""Durations, thresholds files, threshold evaluation and locust's CSV files."""

from __future__ import annotations

import ast
import csv
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.live.load import (
    DEFAULT_LOCUSTFILE,
    DEFAULT_THRESHOLDS_FILE,
    LoadError,
    parse_duration,
)
from harness.live.stats import (
    REQUEST_NAMES,
    StatRow,
    read_history,
    read_stats,
    render_table,
    write_stats_csv,
)
from harness.live.thresholds import evaluate_thresholds, load_thresholds, parse_thresholds
from harness.verdict import InvariantResult


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2m", 120), ("1h30m", 5400), ("1m30s", 90), ("0.5s", 0.5)],
)
def test_durations_parse_like_locust(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "m", "1h-2m", "0", "0s", "-5", "25h", "nan"])
def test_bad_durations_are_refused_with_the_flag_named(text: str) -> None:
    with pytest.raises(LoadError, match="--duration") as info:
        parse_duration(text)
    assert info.value.exit_code == 2


@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_duration_components_add_up(h: int, m: int, s: int) -> None:
    total = h * 3600 + m * 60 + s
    text = f"{h}h{m}m{s}s"
    if total == 0:
        with pytest.raises(LoadError):
            parse_duration(text)
    else:
        assert parse_duration(text) == total


def test_unknown_top_level_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("p95_ms: 100\np99: 20\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_thresholds(path)
    assert str(path) in str(info.value)
    assert "p99: unknown threshold key" in str(info.value)


def test_unknown_endpoint_key_and_name_are_refused() -> None:
    with pytest.raises(LoadError, match=r"endpoints\.cron ok\.p95: unknown threshold key"):
        parse_thresholds({"endpoints": {"cron ok": {"p95": 1}}}, source="f.yaml")
    with pytest.raises(LoadError, match=r"endpoints\.cron: unknown request name"):
        parse_thresholds({"endpoints": {"cron": {"p95_ms": 1}}}, source="f.yaml")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"p95_ms": -1}, "p95_ms: must be a number >= 0"),
        ({"p95_ms": "fast"}, "p95_ms: must be a number >= 0"),
        ({"p95_ms": True}, "p95_ms: must be a number >= 0"),
        ({"max_failure_ratio": 1.5}, r"max_failure_ratio: must lie in \[0, 1\]"),
        ({"min_requests": 2.5}, "min_requests: must be a whole number"),
        ([1, 2], "top level must be a mapping"),
        ({"endpoints": []}, "endpoints: must be a mapping"),
    ],
)
def test_bad_values_are_refused(data: object, problem: str) -> None:
    with pytest.raises(LoadError, match=problem):
        parse_thresholds(data, source="x.yaml")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot read the thresholds file"):
        load_thresholds(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("p95_ms: [1,\n", encoding="utf-8")
    with pytest.raises(LoadError, match="not valid YAML"):
        load_thresholds(bad)


def test_default_thresholds_file_loads() -> None:
    thresholds = load_thresholds(DEFAULT_THRESHOLDS_FILE)
    assert thresholds.aggregate.p95_ms is not None
    assert set(thresholds.endpoints) <= set(REQUEST_NAMES)


def test_locustfile_uses_exactly_the_documented_request_names() -> None:
    tree = ast.parse(DEFAULT_LOCUSTFILE.read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    used = {
        s for s in strings if isinstance(s, str) and re.fullmatch(r"(cron|stripe|dlq) [a-z ]+", s)
    }
    assert used == set(REQUEST_NAMES)


def _row(name: str, **kw: float) -> StatRow:
    base = {"requests": 100, "failures": 0, "rps": 50.0, "p50": 5.0, "p95": 10.0, "p99": 20.0}
    base.update(kw)
    return StatRow(
        name=name,
        method="GET",
        requests=int(base["requests"]),
        failures=int(base["failures"]),
        rps=base["rps"],
        p50=base["p50"],
        p95=base["p95"],
        p99=base["p99"],
        max=base["p99"] * 2,
    )


def test_thresholds_pass_at_the_limit_and_fail_just_past_it() -> None:
    th = parse_thresholds(
        {"p95_ms": 10, "p99_ms": 20, "max_failure_ratio": 0.01, "min_rps": 50}, source="t"
    )
    at_limit = evaluate_thresholds([_row("Aggregated", failures=1)], th)
    assert [r.passed for r in at_limit] == [True, True, True, True]
    past = evaluate_thresholds([_row("Aggregated", p95=11, p99=21, failures=2, rps=49.9)], th)
    assert [r.passed for r in past] == [False, False, False, False]
    assert {r.name for r in past} == {
        "p95_ms (Aggregated)",
        "p99_ms (Aggregated)",
        "max_failure_ratio (Aggregated)",
        "min_rps (Aggregated)",
    }


def test_endpoint_thresholds_use_their_row_and_a_missing_row_fails() -> None:
    th = parse_thresholds(
        {"endpoints": {"cron ok": {"p99_ms": 20}, "stripe new": {"min_requests": 1}}}, source="t"
    )
    results = evaluate_thresholds([_row("Aggregated", p99=500), _row("cron ok", p99=15)], th)
    by_name = {r.name: r for r in results}
    assert by_name["p99_ms (cron ok)"].passed
    assert by_name["p99_ms (cron ok)"].value == 15
    missing = by_name["min_requests (stripe new)"]
    assert not missing.passed
    assert math.isnan(missing.value)


def _write_history_csv(tmp_path: Path) -> Path:
    """A history file with the columns locust 2.x writes (the end-to-end test reads real ones)."""
    pct = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
    history = tmp_path / "locust_stats_history.csv"
    with history.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *pct,
             "Total Request Count", "Total Failure Count", "Total Median Response Time",
             "Total Average Response Time", "Total Min Response Time",
             "Total Max Response Time", "Total Average Content Size"]
        )  # fmt: skip
        for i, users in enumerate((5, 10)):
            w.writerow(
                [1700000000 + i, users, "", "Aggregated", 100.0 * (i + 1), 0,
                 *(["N/A"] * len(pct)), 10, 0, 4, 4, 1, 9, 40]
            )  # fmt: skip
        w.writerow(
            [1700000002, 10, "GET", "cron ok", 5, 0, *(["1"] * len(pct)), 1, 0, 1, 1, 1, 1, 1]
        )
    return history


def _entry(
    name: str, times: dict[str, int], failures: int, start: float, last: float
) -> dict[str, object]:
    """One entry as locust's `serialize_stats` writes it to the --json-file."""
    return {
        "name": name,
        "method": "GET",
        "start_time": start,
        "last_request_timestamp": last,
        "num_requests": sum(times.values()),
        "num_failures": failures,
        "max_response_time": max((float(k) for k in times), default=0.0) + 0.4,
        "response_times": times,
    }


def test_read_stats_computes_locust_percentiles_and_the_aggregate(tmp_path: Path) -> None:
    # 100 requests: 90 at 1 ms, 5 at 10 ms, 4 at 50 ms, 1 at 200 ms.
    cron = _entry("cron ok", {"1": 90, "10": 5, "50": 4, "200": 1}, 2, 1000.0, 1010.0)
    stripe = _entry("stripe new", {"30": 100}, 0, 1002.0, 1020.0)
    path = tmp_path / "locust_stats.json"
    path.write_text(json.dumps([stripe, cron]), encoding="utf-8")
    stats = {s.name: s for s in read_stats(path)}
    assert list(stats) == ["cron ok", "stripe new", "Aggregated"]
    row = stats["cron ok"]
    assert (row.requests, row.failures) == (100, 2)
    # locust's rule: the smallest time with at most (1 - p) of the requests above it.
    assert (row.p50, row.p95, row.p99, row.max) == (1, 50, 200, 200.4)
    assert row.rps == 100 / 20  # over the whole run: 1000.0 .. 1020.0
    total = stats["Aggregated"]
    assert (total.requests, total.failures, total.rps) == (200, 2, 10.0)
    # 200 requests: 90 at 1 ms, 5 at 10, 100 at 30, 4 at 50, 1 at 200.
    assert (total.p50, total.p95, total.p99) == (30, 30, 50)
    out = tmp_path / "stats.csv"
    write_stats_csv(list(stats.values()), out)
    lines = out.read_text().splitlines()
    assert lines[0] == "name,method,requests,failures,rps,p50,p95,p99,max"
    assert lines[1] == "cron ok,GET,100,2,5.000,1,50,200,200"


def test_read_stats_refuses_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(LoadError, match="cannot read locust's stats") as info:
        read_stats(path)
    assert info.value.exit_code == 3


def test_read_history_keeps_the_aggregate(tmp_path: Path) -> None:
    history = read_history(_write_history_csv(tmp_path))
    assert [(h.t, h.rps, h.users) for h in history] == [(0.0, 100.0, 5), (1.0, 200.0, 10)]
    assert math.isnan(history[0].p95)


def test_table_shows_failures() -> None:
    th = parse_thresholds({"p95_ms": 5}, source="t")
    results = evaluate_thresholds([_row("Aggregated")], th)
    table = render_table(
        [_row("Aggregated")], results, [InvariantResult("nothing lost", False, 1, "x")]
    )
    assert "p95_ms (Aggregated)" in table
    assert table.count("FAILED") == 2
