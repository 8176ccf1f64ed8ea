"""`reliability-harness report`: writes the folder whole, refuses bad input, checks a reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness import cli
from harness.cli import report as cli_report
from harness.report import REPORT_FILES
from harness.report.check import main as check_main


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="reliability-harness")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_report.register(sub)
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_report_is_registered_in_the_cli() -> None:
    args = cli.build_parser().parse_args(["report", "x.json", "--out", "y"])
    assert args.func.__module__ == "harness.cli.report"


def test_writes_the_four_files(
    tmp_path: Path, chaos_path: Path, load_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site" / "report"
    assert _run("report", str(chaos_path), str(load_path), "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]  # no temporary leftovers
    assert "report written to" in capsys.readouterr().out


def test_directory_inputs(tmp_path: Path, chaos_path: Path) -> None:
    run_dir = tmp_path / "chaos"
    run_dir.mkdir()
    (run_dir / "results.json").write_bytes(chaos_path.read_bytes())
    assert _run("report", str(run_dir), "--out", str(tmp_path / "r")) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert data["totals"]["scenarios"] == 4


def test_bad_input_writes_nothing_and_names_the_file(
    tmp_path: Path, chaos_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "in" / "results.json"
    bad.parent.mkdir()
    bad.write_text(chaos_path.read_text(encoding="utf-8")[:5000], encoding="utf-8")
    out = tmp_path / "out" / "report"
    assert _run("report", str(chaos_path), str(bad), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "truncated" in err
    assert not out.exists()
    assert not (tmp_path / "out").exists()


def test_bad_input_keeps_the_previous_report(
    tmp_path: Path, chaos_path: Path, empty_path: Path
) -> None:
    out = tmp_path / "report"
    assert _run("report", str(chaos_path), "--out", str(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    wrong = tmp_path / "v3.json"
    doc = json.loads(empty_path.read_text(encoding="utf-8"))
    doc["schema_version"] = 3
    wrong.write_text(json.dumps(doc), encoding="utf-8")
    assert _run("report", str(wrong), "--out", str(out)) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "v3.json"]


def test_an_existing_report_is_replaced_whole(
    tmp_path: Path, chaos_path: Path, empty_path: Path
) -> None:
    out = tmp_path / "report"
    assert _run("report", str(chaos_path), "--out", str(out)) == 0
    assert _run("report", str(empty_path), "--out", str(out)) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["totals"]["scenarios"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_folder_with_other_files_is_not_wiped(
    tmp_path: Path, chaos_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert _run("report", str(chaos_path), "--out", str(tmp_path)) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_check_passes_on_a_reproduced_report_and_fails_on_a_changed_one(
    tmp_path: Path, chaos_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = tmp_path / "reference"
    assert _run("report", str(chaos_path), "--out", str(ref)) == 0
    # The environment section differs (another generation time); the check ignores it.
    assert _run("report", str(chaos_path), "--check", str(ref)) == 0
    assert "report matches" in capsys.readouterr().out
    html = ref / "index.html"
    html.write_text(
        html.read_text(encoding="utf-8").replace("jitter-bounds", "jitter-bonds"), "utf-8"
    )
    assert _run("report", str(chaos_path), "--check", str(ref)) == 1
    err = capsys.readouterr().err
    assert "index.html:" in err
    assert "-" in err
    assert "jitter-bonds" in err
    assert "make reference-report" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference"]  # --check writes nothing


def test_check_module_compares_two_folders(
    tmp_path: Path, chaos_path: Path, empty_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run("report", str(chaos_path), "--out", str(a)) == 0
    assert _run("report", str(chaos_path), "--out", str(b)) == 0
    assert check_main([str(a), str(b)]) == 0
    (b / "summary.md").unlink()
    assert check_main([str(a), str(b)]) == 1
    assert check_main([str(a), str(tmp_path / "missing")]) == 2


def test_title_about_and_no_findings_make_the_teams_report(
    tmp_path: Path, chaos_path: Path
) -> None:
    about = tmp_path / "about.md"
    about.write_text(
        "# Payments platform\n\nWe run this **nightly**; see [our runbook](https://example.org/rb)"
        " and [this](javascript:alert(1)).\n\n- one `check`\n- <script>x</script>\n",
        encoding="utf-8",
    )
    out = tmp_path / "r"
    argv = ["report", str(chaos_path), "--out", str(out), "--title", "Payments reliability"]
    assert _run(*argv, "--about", str(about), "--no-findings") == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>Payments reliability: FAILED</title>" in html
    assert "<h1>Payments reliability</h1>" in html
    assert "<h3>Payments platform</h3>" in html
    assert "<strong>nightly</strong>" in html
    assert '<a href="https://example.org/rb">our runbook</a>' in html
    assert 'href="javascript:' not in html  # only http(s), in-page and relative links
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert 'id="findings"' not in html
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["title"] == "Payments reliability"
    assert data["findings"] == []
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert "Payments reliability: FAILED" in md
    assert "# Payments platform" in md
    assert "Findings" not in md
    # The built-in report keeps its findings and its title.
    assert _run("report", str(chaos_path), "--out", str(tmp_path / "d")) == 0
    default = (tmp_path / "d" / "index.html").read_text(encoding="utf-8")
    assert 'id="findings"' in default
    assert "<h1>Reliability report</h1>" in default


def test_an_unreadable_about_file_is_refused_naming_the_option(
    tmp_path: Path, chaos_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.md"
    out = tmp_path / "r"
    assert _run("report", str(chaos_path), "--out", str(out), "--about", str(missing)) == 2
    assert f"--about ({missing}): cannot read" in capsys.readouterr().err
    assert not out.exists()
