"""The reproducibility check: a freshly generated report must equal the committed one.

Only the delimited environment sections (generation time, machine, wall-clock times) and the
`generated` object of report.json may differ; anything else is printed as a unified diff.
Run as `python -m harness.report.check EXPECTED_DIR ACTUAL_DIR`, or through
`reliability-harness report RESULTS... --check EXPECTED_DIR`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from harness.report import REPORT_FILES
from harness.report.html import ENV_BEGIN, ENV_END

__all__ = ["compare_reports", "main", "read_report_dir", "report_problems", "strip_environment"]

_ENV_RE: Final = re.compile(re.escape(ENV_BEGIN) + r".*?" + re.escape(ENV_END), re.DOTALL)
_ENV_PLACEHOLDER: Final = "<!-- ENVIRONMENT (ignored) -->"
_MAX_DIFF_LINES: Final = 80
_MAX_LINE: Final = 240


def strip_environment(name: str, text: str) -> str:
    """The part of a report file that must be reproducible."""
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(data, dict):
            data.pop("generated", None)
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return _ENV_RE.sub(_ENV_PLACEHOLDER, text)


def read_report_dir(path: Path) -> dict[str, str]:
    """The report files present in `path` (missing ones are simply absent)."""
    out: dict[str, str] = {}
    for name in REPORT_FILES:
        f = path / name
        if f.is_file():
            out[name] = f.read_text(encoding="utf-8")
    return out


def compare_reports(
    expected: Mapping[str, str],
    actual: Mapping[str, str],
    *,
    expected_label: str = "expected",
    actual_label: str = "actual",
) -> list[str]:
    """Readable differences outside the environment sections; empty when reproducible."""
    problems: list[str] = []
    for name in REPORT_FILES:
        if name not in expected and name not in actual:
            continue
        if name not in expected:
            problems.append(f"{name}: missing from {expected_label}")
            continue
        if name not in actual:
            problems.append(f"{name}: missing from {actual_label}")
            continue
        a = strip_environment(name, expected[name]).splitlines(keepends=True)
        b = strip_environment(name, actual[name]).splitlines(keepends=True)
        if a == b:
            continue
        diff = list(
            difflib.unified_diff(
                a, b, fromfile=f"{expected_label}/{name}", tofile=f"{actual_label}/{name}", n=2
            )
        )
        changed = sum(1 for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---")))
        shown = "".join(_clip(d) for d in diff[:_MAX_DIFF_LINES])
        more = (
            f"... {len(diff) - _MAX_DIFF_LINES} more diff lines\n"
            if len(diff) > _MAX_DIFF_LINES
            else ""
        )
        problems.append(f"{name}: {changed} changed lines\n{shown}{more}")
    return problems


def _clip(line: str) -> str:
    """One diff line, cut to a readable length (SVG point lists can be very long)."""
    line = line.rstrip("\n")
    if len(line) > _MAX_LINE:
        line = f"{line[:_MAX_LINE]}... ({len(line) - _MAX_LINE} more characters)"
    return line + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Compare two report folders; exit 1 with the differences, 0 when they match."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.report.check",
        description="Compare two report folders, ignoring only the environment sections.",
    )
    parser.add_argument("expected", type=Path, help="the committed report (reports/reference)")
    parser.add_argument("actual", type=Path, help="the freshly generated report")
    args = parser.parse_args(argv)
    for d in (args.expected, args.actual):
        if not d.is_dir():
            print(f"{d}: not a report folder", file=sys.stderr)
            return 2
    problems = compare_reports(
        read_report_dir(args.expected),
        read_report_dir(args.actual),
        expected_label=str(args.expected),
        actual_label=str(args.actual),
    )
    return report_problems(problems, str(args.expected))


def report_problems(problems: Sequence[str], expected: str) -> int:
    """Print the outcome of a comparison; the exit code for it."""
    if not problems:
        print(f"report matches {expected} (outside the environment sections)")
        return 0
    print(
        f"the report differs from {expected} outside the environment sections; if the change "
        "is intended, regenerate it with `make reference-report` and commit it:",
        file=sys.stderr,
    )
    for p in problems:
        print(p, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
