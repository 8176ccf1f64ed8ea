"""`summary.md`: the report in GitHub-flavoured Markdown, for a PR comment or a step summary.

Short on purpose: the verdict, the findings with their numbers, one row per scenario, the
failures with their counterexamples (folded), load figures, and how to reproduce.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Final

from harness.report import analysis as an
from harness.report.findings import STEP06, findings
from harness.report.html import ENV_BEGIN, ENV_END
from harness.report.model import Invariant, LoadResults, Report
from harness.report.options import BUILT_IN, ReportOptions
from harness.report.svg import fmt_duration, fmt_num

__all__ = ["render_markdown"]

_ENV_OPEN: Final = f"{ENV_BEGIN}: generation time and machine; ignored by the check -->"
_MAX_FIGURES: Final = 4


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> Iterator[str]:
    yield "| " + " | ".join(_cell(c) for c in columns) + " |"
    yield "|" + "|".join("---:" if i in right else "---" for i in range(len(columns))) + "|"
    for r in rows:
        yield "| " + " | ".join(_cell(c) for c in r) + " |"


def _mark(passed: bool) -> str:
    return "\u2705" if passed else "\u274c"


def _failure(where: str, inv: Invariant, reproduce: str) -> Iterator[str]:
    yield "<details>"
    yield f"<summary>\u274c <b>{_html(where)}</b>: {_html(inv.name)}</summary>"
    yield ""
    if inv.details:
        yield inv.details
        yield ""
    if inv.counterexample is not None:
        yield "```json"
        yield json.dumps(inv.counterexample, indent=2, sort_keys=True, ensure_ascii=False)
        yield "```"
        yield ""
    if reproduce:
        yield "Reproduce:"
        yield ""
        yield "```sh"
        yield reproduce
        yield "```"
        yield ""
    yield "</details>"
    yield ""


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(
    report: Report, *, generated_at: str, generator: str, options: ReportOptions = BUILT_IN
) -> str:
    """The summary as Markdown text."""
    out: list[str] = []
    out += _headline(report, options.title)
    if options.about:
        out += [options.about.strip(), ""]
    if options.findings:
        out += _findings(report)
    out += _scenarios(report)
    out += _failures(report)
    for n, lr in enumerate(report.load):
        out += _load(lr, "" if len(report.load) == 1 else f" {n + 1}")
    out.append("The full report (charts, every invariant, the data behind each chart) is")
    out.append("`index.html`; `report.json` and `junit.xml` sit beside it.")
    out.append("")
    out.append(_ENV_OPEN)
    inputs = ", ".join(f"`{an.shown_path(str(r.path))}`" for r in report.inputs)
    out.append(
        f"<sub>Generated at {_html(generated_at)} by {_html(generator)} from {inputs}.</sub>"
    )
    out.append(ENV_END)
    return "\n".join(out) + "\n"


def _headline(report: Report, title: str) -> Iterator[str]:
    t = an.totals(report)
    word = "passed" if t.passed else "FAILED"
    yield f"## {_mark(t.passed)} {title}: {word}"
    yield ""
    parts = [
        f"**{t.scenarios_passed} of {t.scenarios}** scenarios passed",
        f"**{t.invariants_passed} of {t.invariants}** invariants held",
    ]
    if t.load_runs:
        parts.append(f"**{t.load_runs_passed} of {t.load_runs}** load runs passed")
    yield ", ".join(parts) + "."
    for c in report.chaos:
        yield f"{an.chaos_run_words(c)}; reproduce with `{an.chaos_command(c)}`."
    yield ""


def _findings(report: Report) -> Iterator[str]:
    yield "### Findings: where the Step 06 design fails"
    yield ""
    yield STEP06
    yield ""
    for f in findings(report):
        yield f"- **{f.title}**  "
        yield f"  Step 06 design: {f.step06_design}  "
        yield f"  Fixed design: {f.fixed_design}"
        if not f.measured:
            yield f"  _{f.source}_"
        elif f.source:
            yield f"  _Numbers from {f.source}._"
    yield ""


def _scenarios(report: Report) -> Iterator[str]:
    if not report.scenarios:
        return
    yield "### Scenarios"
    yield ""
    rows = []
    for s in report.scenarios:
        held = sum(1 for i in s.invariants if i.passed)
        figs = ", ".join(
            f"{an.words(k)} {an.fmt_value(k, v)}" for k, v in list(s.figures.items())[:_MAX_FIGURES]
        )
        rows.append(
            [
                f"`{s.name}`",
                _mark(s.passed),
                f"{held}/{len(s.invariants)}",
                str(s.seed),
                fmt_duration(s.simulated_seconds),
                figs,
            ]
        )
    yield from _table(
        ("scenario", "verdict", "invariants held", "random seed", "simulated", "key figures"),
        rows,
        {2, 3, 4},
    )
    yield ""


def _failures(report: Report) -> Iterator[str]:
    failures = [
        (s.name, i, s.command) for s in report.scenarios for i in s.invariants if not i.passed
    ]
    for n, lr in enumerate(report.load):
        where = "load" if len(report.load) == 1 else f"load {n + 1}"
        failures += [(where, i, lr.command) for i in lr.invariants if not i.passed]
    if failures:
        yield "### Failures"
        yield ""
        for where, inv, cmd in failures:
            yield from _failure(where, inv, cmd)


def _load(lr: LoadResults, suffix: str) -> Iterator[str]:
    yield f"### {_mark(lr.passed)} Load test{suffix}"
    yield ""
    if lr.stats:
        yield from _table(
            ("endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"),
            [
                [
                    f"{st.method} {st.name}".strip(),
                    f"{st.requests:,}",
                    f"{st.failures:,}",
                    fmt_num(st.rps),
                    fmt_num(st.p50),
                    fmt_num(st.p95),
                    fmt_num(st.p99),
                ]
                for st in lr.stats
            ],
            {1, 2, 3, 4, 5, 6},
        )
        yield ""
    if lr.threshold_results:
        yield from _table(
            ("threshold", "verdict", "limit", "measured"),
            [
                [th.name, _mark(th.passed), fmt_num(th.limit), fmt_num(th.value)]
                for th in lr.threshold_results
            ],
            {2, 3},
        )
        yield ""
    if lr.command:
        yield f"Reproduce with `{lr.command}`."
        yield ""
