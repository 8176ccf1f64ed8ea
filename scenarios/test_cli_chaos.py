"""`reliability-harness chaos`: exit codes, summary, results.json and junit.xml."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.chaos.results import SCHEMA
from harness.cli import main
from harness.cli.chaos import run_chaos


def test_smoke_passes_and_writes_results(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_chaos(scenarios=["smoke"], out=tmp_path, quiet=True, stdout=out)
    assert code == 0
    assert "smoke" in out.getvalue()
    assert "ok" in out.getvalue()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["schema"] == SCHEMA
    assert doc["schema_version"] == 2
    (sc,) = doc["scenarios"]
    assert sc["passed"] is True
    assert len(sc["trace_hash"]) == 64
    names = {i["name"] for i in sc["invariants"]}
    assert {"nothing_lost", "no_double_processing", "determinism"} <= names
    assert set(sc["series"]) == {
        "retry_delays", "breaker_timeline", "dlq_depth", "dlq_purges", "arrivals",
    }  # fmt: skip
    assert sc["figures"]["events_generated"] == 500
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"


def test_broken_invariant_exits_one_with_a_junit_failure(tmp_path: Path) -> None:
    bad = tmp_path / "too-strict.yaml"
    bad.write_text(
        "name: too-strict\ntenants: [{id: a}]\ntraffic: {events: 50, duration: 60}\n"
        "n8n: {faults: {rules: [{status: {'400': 1.0}}]}}\nsettle: 60\n"
        "invariants: {outcome_bounds: {max_dead_lettered: 0}}\n"
    )
    err = io.StringIO()
    code = run_chaos(scenarios=[str(bad)], out=tmp_path / "out", quiet=True,
                     stdout=io.StringIO(), stderr=err)  # fmt: skip
    assert code == 1
    assert "BROKEN too-strict: outcome_bounds" in err.getvalue()
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    failures = root.findall(".//failure")
    assert failures
    # One JUnit writer for chaos and report: the failure names the command that reproduces it.
    assert "Reproduce: reliability-harness chaos --scenario" in (failures[0].text or "")


def test_bad_scenario_file_exits_two(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: typo\ntenants: [{id: a}]\ntrafic: {}\n")
    err = io.StringIO()
    assert run_chaos(scenarios=[str(bad)], out=tmp_path, stderr=err) == 2
    assert "typo.yaml: trafic: unknown key" in err.getvalue()


def test_the_command_is_registered(tmp_path: Path) -> None:
    assert main(["chaos", "--scenario", "smoke", "--quiet", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "results.json").exists()
