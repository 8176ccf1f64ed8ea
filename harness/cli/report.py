"""`reliability-harness report RESULTS... (--out DIR | --check DIR) [--title T] [--about FILE.md]
[--no-findings]`.

Builds the report (index.html, summary.md, report.json, junit.xml) from chaos and load results,
or, with `--check`, builds it in memory and compares it with a committed report: the CI check
that the published reference report is reproducible.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.report import ResultsError, build_report, write_report
from harness.report.check import compare_reports, read_report_dir, report_problems
from harness.report.options import DEFAULT_TITLE, ReportOptions
from harness.report.swarm import add_swarm_section, read_swarm_sections

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `report` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="build an HTML/Markdown/JSON/JUnit report from chaos and load results",
        description=(
            "Build a reliability report from results.json files (or folders holding one) "
            "written by `reliability-harness chaos --out` and `reliability-harness load --out`."
        ),
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--out", type=Path, metavar="DIR", help="write the report folder here (replaced whole)"
    )
    where.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="write nothing; exit 1 unless the report equals the one in DIR outside its "
        "environment sections",
    )
    p.add_argument(
        "--title", default=DEFAULT_TITLE, metavar="TEXT", help=f"the page title ({DEFAULT_TITLE})"
    )
    p.add_argument(
        "--about",
        type=Path,
        metavar="FILE.md",
        help="your team's own front text (Markdown: headings, paragraphs, lists, links, code)",
    )
    p.add_argument(
        "--no-findings",
        dest="findings",
        action="store_false",
        help="leave out the built-in findings (the Step 06 design against the fixed design)",
    )
    p.set_defaults(func=_run)


def _expected() -> tuple[str, ...]:
    """What a swarm should reach (`harness.swarm.coverage.EXPECTED`): the report lists what
    no run reached."""
    from harness.swarm.coverage import EXPECTED

    return EXPECTED


def _options(args: argparse.Namespace) -> ReportOptions:
    """The team's choices; a bad --title or --about raises ValueError naming the option."""
    title = " ".join(str(args.title).split())
    if not title:
        raise ValueError("--title (command line): must not be empty")
    about = ""
    if args.about is not None:
        try:
            about = Path(args.about).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"--about ({args.about}): not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ValueError(f"--about ({args.about}): cannot read: {exc.strerror}") from None
    return ReportOptions(title=title, about=about, findings=bool(args.findings))


def _run(args: argparse.Namespace) -> int:
    # The only clock read: the generation time printed in the environment section.
    generated_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    try:
        options = _options(args)
    except ValueError as exc:
        print(f"reliability-harness report: {exc}", file=sys.stderr)
        return 2
    try:
        files = build_report(list(args.results), generated_at=generated_at, options=options)
        files = add_swarm_section(files, read_swarm_sections(args.results), _expected())
    except ResultsError as exc:
        print(f"reliability-harness report: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        expected_dir: Path = args.check
        if not expected_dir.is_dir():
            print(
                f"reliability-harness report: {expected_dir}: no such report folder",
                file=sys.stderr,
            )
            return 2
        problems = compare_reports(
            read_report_dir(expected_dir),
            files,
            expected_label=str(expected_dir),
            actual_label="regenerated",
        )
        return report_problems(problems, str(expected_dir))
    out: Path = args.out
    try:
        write_report(files, out)
    except (ResultsError, OSError) as exc:
        print(f"reliability-harness report: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {out}/ ({', '.join(files)})")
    return 0
