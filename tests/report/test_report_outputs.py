"""The four outputs: well-formed, complete, accessible, self-contained and deterministic."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.report import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, render_report
from harness.report.check import compare_reports, strip_environment
from harness.report.model import Report, load_report

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"


def _render(paths: list[Path], when: str = "2030-01-01T00:00:00+00:00") -> dict[str, str]:
    return render_report(load_report(paths), generated_at=when, generator="test 1.0")


@pytest.fixture
def files(chaos_path: Path, empty_path: Path, load_path: Path) -> dict[str, str]:
    return _render([chaos_path, empty_path, load_path])


def _tree(html: str) -> ET.Element:
    return ET.fromstring(html.split("\n", 1)[1])  # drop <!DOCTYPE html>


def test_html_is_well_formed_and_self_contained(files: dict[str, str]) -> None:
    html = files["index.html"]
    assert html.startswith("<!DOCTYPE html>\n")
    root = _tree(html)
    assert root.tag == f"{XHTML}html"
    assert root.get("lang") == "en"
    assert root.find(f".//{XHTML}script") is None
    assert root.find(f".//{XHTML}link") is None
    assert root.find(f".//{XHTML}img") is None
    for el in root.iter():
        for attr in ("src", "href"):
            value = el.get(attr)
            assert value is None or value.startswith("#"), (el.tag, value)
    style = root.find(f".//{XHTML}style")
    assert style is not None
    assert style.text is not None
    assert "@media print" in style.text
    assert "@import" not in style.text
    assert "url(" not in style.text


def test_every_chart_is_accessible_and_beside_a_table(files: dict[str, str]) -> None:
    root = _tree(files["index.html"])
    charts = list(root.iter(f"{SVG}svg"))
    # jitter: 5 range charts + 4 histograms; outage: breaker + DLQ; herd: 2 arrivals
    # + 3 bars; replay: 3 bars; load: percentiles + latency + throughput + users (req/s and
    # users are different units: a chart each).
    assert len(charts) == 5 + 4 + 2 + 2 + 3 + 3 + 4
    ids = [c.get("id") for c in charts]
    assert len(set(ids)) == len(ids)
    for c in charts:
        assert c.get("role") == "img"
        assert c.get("aria-label")
        title, desc = c.find(f"{SVG}title"), c.find(f"{SVG}desc")
        assert title is not None
        assert title.text
        assert desc is not None
        assert desc.text
    pairs = [f for f in root.iter(f"{XHTML}figure") if "pair" in (f.get("class") or "").split()]
    assert len(pairs) == len(charts)
    for fig in pairs:
        assert fig.find(f".//{SVG}svg") is not None
        assert fig.find(f".//{XHTML}table") is not None
        assert fig.find(f".//{XHTML}figcaption") is not None


def test_headings_are_in_order(files: dict[str, str]) -> None:
    root = _tree(files["index.html"])
    levels = [
        int(el.tag[-1]) for el in root.iter() if re.fullmatch(rf"{re.escape(XHTML)}h[1-6]", el.tag)
    ]
    assert levels[0] == 1
    assert levels.count(1) == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels))


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


def test_html_shows_verdicts_seeds_commands_and_bounds(files: dict[str, str]) -> None:
    root = _tree(files["index.html"])
    text = _text(root)
    assert "FAILED: 5 of 6 scenarios passed, 8 of 9 invariants held" in text
    assert "reliability-harness chaos --scenario n8n-outage --seed 1" in text
    assert "entry dlq-7 visible 2 s after expires_at" in text
    assert '"expires_at": 5400.0' in text  # the counterexample
    for strategy in ("none", "additive", "full", "equal", "decorrelated"):
        assert f"Strategy {strategy}: 60 delays" in text
    assert "Breaker state per tenant" in text
    assert "t-002" in text
    assert "Dead-letter queue: visible depth, TTL expiry and purges" in text
    assert "Herd comparison" in text
    assert "Replay comparison" in text
    assert "Latency percentiles per endpoint" in text
    assert "Throughput over the load run" in text
    assert "Simulated users over the load run" in text
    bounds = [el for el in root.iter(f"{SVG}line") if el.get("class") == "bound"]
    assert len(bounds) == 2 * 4  # low and high marker on each jittered histogram


def test_findings_state_the_numbers_from_the_results(
    tmp_path: Path, chaos_doc: dict[str, Any], empty_path: Path
) -> None:
    # Change the measured numbers: the findings must follow them (nothing hard-coded).
    replay = chaos_doc["scenarios"][3]["comparison"]
    replay["rows"] = [
        ["seed (last event id)", 4321, 77, 5000],
        ["fixed (processed set)", 0, 0, 5000],
    ]
    herd = chaos_doc["scenarios"][2]["comparison"]
    for row in herd["rows"]:
        if row[0] == "full":
            row[2] = 999
    path = tmp_path / "results.json"
    path.write_text(json.dumps(chaos_doc), encoding="utf-8")
    files = _render([path])
    section = _tree(files["index.html"]).find(f".//{XHTML}section[@id='findings']")
    assert section is not None
    text = _text(section)
    assert "4,321 replayed events accepted and 77 legitimate events dropped" in text
    assert "fixed design: 0 replayed events accepted and 0 legitimate events dropped" in text
    assert "worst first: peak arrivals per s: full 999, none 400, additive 380" in text
    assert "total calls: equal 1,373, none 800, additive 760, decorrelated 633, full 555" in text
    assert "Ranked by total calls, fewest first: full 555 < decorrelated 633 < additive 760" in text
    assert "AWS" not in text  # no claim about a study the table does not reproduce
    assert "secret === expected" in text
    assert "Authorization: Bearer" in text
    md = files["summary.md"]
    assert "4,321 replayed events accepted" in md
    data = json.loads(files["report.json"])
    assert [f["key"] for f in data["findings"]] == [
        "replay-ledger",
        "additive-jitter",
        "cron-secret",
        "dlq-timer",
    ]
    # Without a load run, the cron finding says it was not measured rather than invent numbers.
    cron = data["findings"][2]
    assert cron["measured"] is False
    assert cron["evidence"] == []


def test_findings_without_comparisons_say_not_measured(empty_path: Path) -> None:
    data = json.loads(_render([empty_path])["report.json"])
    assert [f["measured"] for f in data["findings"]] == [False, False, False]
    assert "no replay comparison" in data["findings"][0]["source"]


def test_markdown_summary(files: dict[str, str]) -> None:
    md = files["summary.md"]
    assert md.startswith("## \u274c Reliability report: FAILED\n")
    assert "| `n8n-outage` | \u274c | 2/3 | 1 | 2 h |" in md
    assert "<summary>\u274c <b>n8n-outage</b>: dlq_ttl</summary>" in md
    assert '"entry": "dlq-7"' in md
    assert "reliability-harness chaos --scenario n8n-outage --seed 1" in md
    assert "| GET /api/dlq | 0 | 0 | 0 | n/a | n/a | n/a |" in md
    assert len(md.encode()) < 65536  # fits a GitHub PR comment


def test_junit_has_one_case_per_scenario_and_invariant(files: dict[str, str]) -> None:
    root = ET.fromstring(files["junit.xml"].encode())
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "chaos.jitter-bounds",
        "chaos.n8n-outage",
        "chaos.thundering-herd",
        "chaos.replay-ledger",
        "chaos.quiet",
        "chaos.no-series",
        "load",
    ]
    cases = root.findall(".//testcase")
    # 9 invariants, the invariant-less scenario as one case, load: 2 invariants + 2 thresholds
    assert len(cases) == 9 + 1 + 4
    assert root.get("tests") == str(len(cases))
    failures = root.findall(".//failure")
    assert len(failures) == 1
    assert root.get("failures") == "1"
    fail_case = next(c for c in cases if c.find("failure") is not None)
    assert fail_case.get("classname") == "chaos.n8n-outage"
    assert fail_case.get("name") == "dlq_ttl"
    body = failures[0].text or ""
    assert '"entry": "dlq-7"' in body
    assert "Reproduce: reliability-harness chaos --scenario n8n-outage --seed 1" in body
    props = {p.get("name"): p.get("value") for p in suites[1].iter("property")}
    assert props["seed"] == "1"
    assert props["trace_hash"] == "ffee00112233445566778899aabbccdd"


def test_json_report_schema(files: dict[str, str]) -> None:
    data = json.loads(files["report.json"])
    assert data["schema"] == REPORT_SCHEMA == "reliability-harness/report"
    assert data["schema_version"] == REPORT_SCHEMA_VERSION == 2
    assert data["passed"] is False
    assert data["totals"] == {
        "scenarios": 6,
        "scenarios_passed": 5,
        "invariants": 9,
        "invariants_passed": 8,
        "load_runs": 1,
        "load_runs_passed": 1,
    }
    scenario = data["chaos"][0]["scenarios"][0]
    assert {g["strategy"] for g in scenario["retry_delays"]} == {
        "none",
        "additive",
        "full",
        "equal",
        "decorrelated",
    }
    assert all(g["outside_bounds"] == 0 for g in scenario["retry_delays"])
    assert set(data["generated"]) == {"generated_at", "generator", "inputs", "wall_seconds"}


def test_same_results_give_identical_bytes_outside_the_environment(
    chaos_path: Path, empty_path: Path, load_path: Path, tmp_path: Path
) -> None:
    a = _render([chaos_path, empty_path, load_path], when="2030-01-01T00:00:00+00:00")
    # Same results from another place, another run time, another machine:
    doc = json.loads(chaos_path.read_text(encoding="utf-8"))
    doc["generated_at"] = "2031-05-05T05:05:05+00:00"
    doc["environment"] = {"python": "3.12.0", "platform": "elsewhere"}
    for s in doc["scenarios"]:
        s["wall_seconds"] = 99.0
    moved = tmp_path / "elsewhere.json"
    moved.write_text(json.dumps(doc, indent=4), encoding="utf-8")
    b = _render([moved, empty_path, load_path], when="2031-01-01T00:00:00+00:00")
    assert compare_reports(a, b) == []
    for name in a:
        assert a[name] != b[name], name  # the environment sections do differ
        assert strip_environment(name, a[name]) == strip_environment(name, b[name])
    again = _render([chaos_path, empty_path, load_path], when="2030-01-01T00:00:00+00:00")
    assert again == a


def test_a_changed_result_is_a_readable_difference(
    chaos_path: Path, chaos_doc: dict[str, Any], tmp_path: Path
) -> None:
    a = _render([chaos_path])
    chaos_doc["scenarios"][0]["trace_hash"] = "0" * 32
    path = tmp_path / "results.json"
    path.write_text(json.dumps(chaos_doc), encoding="utf-8")
    problems = compare_reports(a, _render([path]), expected_label="ref", actual_label="new")
    # The trace hash is in the page, the JSON and the JUnit properties (not in the summary).
    assert [p.split(":")[0] for p in problems] == ["index.html", "report.json", "junit.xml"]
    assert "--- ref/junit.xml" in problems[2]
    assert "+++ new/junit.xml" in problems[2]
    assert '+      <property name="trace_hash" value="' + "0" * 32 in problems[2]


def test_empty_report_inputs_render(empty_path: Path) -> None:
    files = _render([empty_path])
    root = _tree(files["index.html"])
    assert list(root.iter(f"{SVG}svg")) == []
    assert "Scenario: no-series" in _text(root)
    assert ET.fromstring(files["junit.xml"].encode()).get("failures") == "0"


def test_report_model_is_the_only_input(chaos_path: Path) -> None:
    report = load_report([chaos_path])
    assert isinstance(report, Report)
    one = render_report(report, generated_at="x", generator="g")
    two = render_report(report, generated_at="x", generator="g")
    assert one == two


def test_replay_finding_reads_figures_when_no_table(
    tmp_path: Path, chaos_doc: dict[str, Any]
) -> None:
    replay = chaos_doc["scenarios"][3]
    replay["comparison"] = None
    replay["figures"].update(
        seed_replays_accepted=17,
        seed_legitimate_dropped=9,
        fixed_replays_accepted=0,
        fixed_legitimate_dropped=0,
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(chaos_doc), encoding="utf-8")
    finding = json.loads(_render([path])["report.json"])["findings"][0]
    assert finding["measured"] is True
    assert (
        "Step 06 design: 17 replayed events accepted and 9 legitimate events dropped"
        in (finding["step06_design"])
    )
    assert "fixed design: 0 replayed events accepted" in finding["step06_design"]


def test_every_internal_link_has_a_target(files: dict[str, str], load_path: Path) -> None:
    for html in (files["index.html"], _render([load_path])["index.html"]):
        root = _tree(html)
        ids = {el.get("id") for el in root.iter() if el.get("id")}
        links = [el.get("href") for el in root.iter(f"{XHTML}a")]
        assert links
        assert all(h is not None and h[1:] in ids for h in links)


def test_long_diff_lines_are_cut() -> None:
    problems = compare_reports({"index.html": "a" * 5000 + "\n"}, {"index.html": "b" * 5000 + "\n"})
    assert len(problems) == 1
    assert "more characters" in problems[0]
    assert len(problems[0]) < 1000
