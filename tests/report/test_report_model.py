"""Reading results: every shape the producers write, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.report.model import (
    ChaosResults,
    LoadResults,
    ResultsError,
    load_report,
    load_results,
)


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_chaos_results_are_read_with_every_series(chaos_path: Path) -> None:
    res = load_results(chaos_path)
    assert isinstance(res, ChaosResults)
    assert [s.name for s in res.scenarios] == [
        "jitter-bounds",
        "n8n-outage",
        "thundering-herd",
        "replay-ledger",
    ]
    jitter, outage, herd, replay = res.scenarios
    assert len(jitter.series.retry_delays) == 300
    # The fixture predates the rename: its `seed` strategy reads as `additive`.
    assert {d.strategy for d in jitter.series.retry_delays} == {
        "none",
        "additive",
        "full",
        "equal",
        "decorrelated",
    }
    assert outage.series.breaker_timeline[0].state == "closed"
    assert outage.series.dlq_purges[0].value == 3
    assert not outage.passed
    broken = [i for i in outage.invariants if not i.passed]
    assert broken[0].counterexample is not None
    assert broken[0].counterexample["entry"] == "dlq-7"
    assert {p.variant for p in herd.series.arrivals} == {"budget on", "budget off"}
    assert herd.comparison is not None
    assert herd.comparison.kind == "herd"
    assert replay.comparison is not None
    assert replay.comparison.rows[0][1] == 131
    assert replay.series.arrivals == ()


def test_directory_is_resolved_to_results_json(tmp_path: Path, chaos_path: Path) -> None:
    (tmp_path / "results.json").write_bytes(chaos_path.read_bytes())
    res = load_results(tmp_path)
    assert res.path == tmp_path / "results.json"


def test_directory_without_results_names_it(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=rf"{tmp_path}: a directory without results.json"):
        load_results(tmp_path)


def test_load_results_accept_argv_command_and_null_statistics(load_path: Path) -> None:
    res = load_results(load_path)
    assert isinstance(res, LoadResults)
    assert res.command.startswith("reliability-harness load --users 50")
    empty = next(s for s in res.stats if s.name == "/api/dlq")
    assert empty.p50 is None
    assert empty.max is None
    assert res.history[-1].rps is None
    assert res.environment["cpus"] == "2"


def test_empty_and_missing_series_are_empty(empty_path: Path) -> None:
    res = load_results(empty_path)
    assert isinstance(res, ChaosResults)
    quiet, bare = res.scenarios
    assert quiet.series.retry_delays == ()
    assert quiet.figures == {}
    assert bare.series.arrivals == ()
    assert bare.comparison is None
    assert bare.seed == 5  # inherited from the run


def test_other_schema_version_is_refused_naming_the_file(
    tmp_path: Path, chaos_doc: dict[str, Any]
) -> None:
    chaos_doc["schema_version"] = 3
    path = _write(tmp_path / "results.json", chaos_doc)
    with pytest.raises(ResultsError) as err:
        load_results(path)
    assert str(path) in str(err.value)
    assert "schema_version" in str(err.value)
    assert "version 1 and 2" in str(err.value)


def test_both_chaos_results_versions_read(tmp_path: Path, chaos_doc: dict[str, Any]) -> None:
    for version in (1, 2):
        chaos_doc["schema_version"] = version
        path = _write(tmp_path / f"v{version}.json", chaos_doc)
        assert load_results(path).scenarios


def test_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.json", {"schema": "something/else", "schema_version": 1})
    with pytest.raises(ResultsError, match=r"x\.json: key 'schema'"):
        load_results(path)


def test_truncated_file_is_refused_naming_the_file(tmp_path: Path, chaos_path: Path) -> None:
    text = chaos_path.read_text(encoding="utf-8")
    path = tmp_path / "results.json"
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ResultsError) as err:
        load_results(path)
    message = str(err.value)
    assert message.startswith(f"{path}:")
    assert "not valid JSON" in message
    assert "truncated" in message


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ResultsError, match="empty file"):
        load_results(path)


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (
            lambda d: d["scenarios"][1]["invariants"][0].update(passed="yes"),
            "scenarios[1].invariants[0].passed",
            "true or false",
        ),
        (
            lambda d: d["scenarios"][0]["series"]["retry_delays"][3].pop("high"),
            "scenarios[0].series.retry_delays[3].high",
            "missing",
        ),
        (
            lambda d: d["scenarios"][2]["comparison"]["rows"][0].pop(),
            "scenarios[2].comparison.rows[0]",
            "cells for 5 columns",
        ),
        (
            lambda d: d["scenarios"][3]["figures"].update(events="many"),
            "scenarios[3].figures.events",
            "a number",
        ),
        (lambda d: d.pop("scenarios"), "scenarios", "missing"),
    ],
)
def test_malformed_values_name_the_key(
    tmp_path: Path, chaos_doc: dict[str, Any], mutate: Any, key: str, problem: str
) -> None:
    mutate(chaos_doc)
    path = _write(tmp_path / "results.json", chaos_doc)
    with pytest.raises(ResultsError) as err:
        load_results(path)
    assert f"{path}: key '{key}'" in str(err.value)
    assert problem in str(err.value)


def test_report_splits_chaos_and_load_in_order(
    chaos_path: Path, load_path: Path, empty_path: Path
) -> None:
    report = load_report([load_path, chaos_path, empty_path])
    assert [c.path for c in report.chaos] == [chaos_path, empty_path]
    assert [r.path for r in report.load] == [load_path]
    assert len(report.scenarios) == 6
    assert not report.passed


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such file"):
        load_report([tmp_path / "nope.json"])


def test_a_time_that_never_came_reads_never_also_for_a_variant() -> None:
    """A herd variant's `none.time_until_all_delivered` of None is "never", not "n/a"."""
    from harness.report.analysis import fmt_value

    assert fmt_value("time_until_all_delivered", None) == "never"
    assert fmt_value("none.time_until_all_delivered", None) == "never"
    assert fmt_value("none.n8n_calls", None) == "n/a"
