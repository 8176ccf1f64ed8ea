"""The report reads what `reliability-harness chaos` actually writes (a shortened real run)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report import render_report
from harness.report.model import ChaosResults, load_report, load_results

SVG = "{http://www.w3.org/2000/svg}"


def test_variants_states_and_verdict_are_understood(producer_path: Path) -> None:
    res = load_results(producer_path)
    assert isinstance(res, ChaosResults)
    breaker, herd, replay = res.scenarios
    assert {p.state for p in breaker.series.breaker_timeline} <= {"closed", "open", "half_open"}
    assert "open" in {p.state for p in breaker.series.breaker_timeline}
    assert {p.variant for p in herd.series.arrivals} == {"", "budget on"}
    assert {p.group for p in herd.series.arrivals} == {
        "none",
        "additive",
        "full",
        "equal",
        "decorrelated",
    }
    assert herd.comparison is not None
    assert herd.comparison.matches_study is True
    assert herd.comparison.verdict.startswith("matches the AWS study")
    assert replay.comparison is not None
    assert replay.comparison.kind == "replay"


def test_findings_from_a_real_run(producer_path: Path) -> None:
    files = render_report(load_report([producer_path]), generated_at="t", generator="g")
    findings = json.loads(files["report.json"])["findings"]
    replay, herd = findings[0], findings[1]
    doc = json.loads(producer_path.read_text(encoding="utf-8"))
    rows = next(s for s in doc["scenarios"] if s["name"] == "replay-comparison")["comparison"][
        "rows"
    ]
    seed_row, fixed_row = rows
    assert seed_row[0].startswith(("Step 06", "seed"))  # results before the rename say "seed"
    assert (
        f"Step 06 design: {seed_row[3]:,} replayed events accepted and {seed_row[4]:,} legitimate "
        "events dropped" in replay["step06_design"]
    )
    assert (
        f"fixed design: {fixed_row[3]:,} replayed events accepted and {fixed_row[4]:,} "
        "legitimate events dropped" in replay["step06_design"]
    )
    herd_doc = next(s for s in doc["scenarios"] if s["name"] == "herd")
    assert herd_doc["comparison"]["verdict"] in herd["fixed_design"]
    calls = {
        r[0]: r[4] for r in herd_doc["comparison"]["rows"] if r[1] is False
    }  # n8n_calls, budget off
    worst = max(calls, key=lambda k: calls[k])
    assert f"n8n calls: {worst} {calls[worst]:,}" in herd["step06_design"]


def test_herd_arrivals_are_drawn_per_budget_setting(producer_path: Path) -> None:
    files = render_report(load_report([producer_path]), generated_at="t", generator="g")
    root = ET.fromstring(files["index.html"].split("\n", 1)[1])
    titles = [t.text or "" for t in root.iter(f"{SVG}title") if (t.get("id") or "")]
    arrivals = [t for t in titles if t.startswith("Calls arriving at n8n per second in herd")]
    assert arrivals == [
        "Calls arriving at n8n per second in herd (retry budget off)",
        "Calls arriving at n8n per second in herd (retry budget on)",
    ]
    # five strategies, one line each, in each chart
    charts = [
        c
        for c in root.iter(f"{SVG}svg")
        if (c.get("aria-label") or "").startswith("Calls arriving at n8n per second in herd")
    ]
    for c in charts:
        assert len([p for p in c.iter(f"{SVG}polyline") if p.get("class") == "series"]) == 5
    report = json.loads(files["report.json"])
    herd = next(s for s in report["chaos"][0]["scenarios"] if s["name"] == "herd")
    # arrivals are counted per 2 s bucket by the producer; the report gives rates per second
    assert {a["bucket_seconds"] for a in herd["arrivals"]} == {2.0}
