"""The self-contained HTML report: findings first, then verdicts, then one section per scenario.

The page is templates/page.html.j2 (Jinja2, autoescaped; its styles are templates/report.css).
This module and its helpers only decide what the page says: each section is a list of
html_blocks records (headings, paragraphs, tables, figures), drawn by the macros of
templates/blocks.html.j2; charts are svg.py's geometry, drawn by templates/chart.svg.j2.

No network: styles inline, charts as inline SVG, each chart beside a table of its data. The page
is well-formed XML (polyglot HTML), prints cleanly, and is byte-identical for the same results
except inside the delimited environment section at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from harness.report import analysis as an
from harness.report import html_blocks as hb
from harness.report import html_series, html_tables, svg
from harness.report.findings import STEP06, findings
from harness.report.jinja import render_page
from harness.report.model import (
    Report,
    Scenario,
)
from harness.report.options import BUILT_IN, ReportOptions, about_blocks

__all__ = ["ENV_BEGIN", "ENV_END", "render_html"]

ENV_BEGIN: Final = "<!-- BEGIN ENVIRONMENT"
"""Opens the only part of any report output that may differ between two runs."""
ENV_END: Final = "<!-- END ENVIRONMENT -->"


def _verdicts(report: Report, slugs: Sequence[str]) -> hb.Section:
    rows: list[list[hb.Rich]] = []
    for s, slug in zip(report.scenarios, slugs, strict=True):
        held = sum(1 for i in s.invariants if i.passed)
        invs: list[hb.Inline] = []
        for n, i in enumerate(s.invariants):
            invs += [", " if n else "", f"{i.name} ", hb.Mark(i.passed, "held", "BROKEN")]
        rows.append(
            [
                (hb.Link(f"#{slug}", s.name),),
                (hb.Mark(s.passed, "passed", "failed"),),
                f"{held} of {len(s.invariants)}",
                tuple(x for x in invs if x) or "none checked",
                str(s.seed),
                svg.fmt_duration(s.simulated_seconds),
                (hb.Code(s.trace_hash[:16]),) if s.trace_hash else "",
            ]
        )
    columns = (
        "scenario",
        "verdict",
        "invariants held",
        "invariants",
        "random seed",
        "simulated time",
        "trace hash",
    )
    table = hb.table("Scenarios", columns, rows, numeric=(4,))
    return hb.Section("verdicts", "Verdict per scenario and invariant", [table])


def _scenario(s: Scenario, slug: str, ids: hb.Ids) -> hb.Section:
    blocks: list[hb.Block] = []
    if s.description:
        blocks.append(hb.Para(s.description))
    meta: list[tuple[str, hb.Rich]] = [
        ("Reproduce", (hb.Code(s.command),) if s.command else "not recorded"),
        ("Random seed", str(s.seed)),
        ("Scenario file", (hb.Code(s.file),) if s.file else ""),
        ("Store", s.store),
        ("Simulated time", svg.fmt_duration(s.simulated_seconds)),
        ("Trace hash", (hb.Code(s.trace_hash),) if s.trace_hash else ""),
    ]
    blocks.append(hb.Meta(meta))
    blocks.append(hb.Heading(3, f"Invariants of {s.name}"))
    blocks += hb.invariants_table(s.invariants, f"Invariants checked in {s.name}")
    if s.figures:
        blocks.append(hb.Heading(3, f"Key figures of {s.name}"))
        plain, columns, grid = an.figure_tables(s.figures)
        if grid:
            blocks.append(
                hb.table(
                    f"Figures of {s.name} per variant (rows) and measure (columns)",
                    columns,
                    grid,
                    numeric=range(1, len(columns)),
                )
            )
        if plain:
            blocks.append(
                hb.table(f"Figures of {s.name}", ("figure", "value"), plain, numeric=(1,))
            )
    blocks += html_series.retry_delays(s, ids)
    blocks += html_series.breakers(s, ids)
    blocks += html_series.dlq(s, ids)
    blocks += html_series.arrivals(s, ids)
    if s.comparison is not None:
        blocks += html_tables.comparison(s, s.comparison, ids)
    heading = (f"Scenario: {s.name} ", hb.Mark(s.passed, "passed", "failed"))
    return hb.Section(slug, heading, blocks, "scenario")


def _environment(report: Report, generated_at: str, generator: str) -> hb.Section:
    blocks: list[hb.Block] = [
        hb.Para(
            "This section differs between runs and machines; everything above it is a "
            "function of the random seeds and the scenario catalogue."
        )
    ]
    rows = [["report generated at", generated_at], ["report generator", generator]]
    for res in report.inputs:
        rows.append(
            [f"input {an.shown_path(str(res.path))}", f"results generated at {res.generated_at}"]
        )
        rows += [[f"  {k}", v] for k, v in res.environment.items()]
    blocks.append(hb.table("Generation", ("what", "value"), rows))
    walls = [s for s in report.scenarios if s.wall_seconds is not None]
    if walls:
        wrows = []
        for s in walls:
            w = s.wall_seconds or 0.0
            ratio = f"{svg.fmt_num(s.simulated_seconds / w)} : 1" if w > 0 else ""
            wrows.append([s.name, f"{w:.2f} s", ratio])
        blocks.append(
            hb.table(
                "Wall-clock time per scenario",
                ("scenario", "wall time", "simulated : wall"),
                wrows,
                numeric=(1, 2),
            )
        )
    return hb.Section("environment", "Generation time and environment", blocks)


def render_html(
    report: Report, *, generated_at: str, generator: str, options: ReportOptions = BUILT_IN
) -> str:
    """The whole page as one string (UTF-8 text), from templates/page.html.j2."""
    ids = hb.Ids()
    t = an.totals(report)
    slugs = [ids.slug(f"scenario-{s.name}") for s in report.scenarios]
    load_slugs = [ids.slug(f"load-{i + 1}") for i in range(len(report.load))]
    nav = [("about", "About this report")] if options.about else []
    if options.findings:
        nav.append(("findings", "Findings"))
    if report.scenarios:
        nav.append(("verdicts", "Verdicts"))
    nav += [(sl, f"Scenario {s.name}") for s, sl in zip(report.scenarios, slugs, strict=True)]
    nav += [(sl, f"Load test {i + 1}") for i, sl in enumerate(load_slugs)]
    nav.append(("environment", "Generation and environment"))
    sections: list[hb.Section] = []
    if report.scenarios:
        sections.append(_verdicts(report, slugs))
    for s, slug in zip(report.scenarios, slugs, strict=True):
        sections.append(_scenario(s, slug, ids))
    for i, (lr, slug) in enumerate(zip(report.load, load_slugs, strict=True)):
        n = i + 1 if len(report.load) > 1 else 0
        sections.append(html_tables.load(lr, n, ids, slug))
    runs = [(an.chaos_run_words(c), an.chaos_command(c)) for c in report.chaos]
    runs += [("Load run", lr.command) for lr in report.load if lr.command]
    return render_page(
        title=options.title,
        passed=t.passed,
        summary=_summary(t),
        runs=runs,
        nav=nav,
        about=about_blocks(options.about) if options.about else [],
        findings=findings(report) if options.findings else None,
        step06=STEP06,
        sections=sections,
        environment=_environment(report, generated_at, generator),
    )


def _summary(t: an.Totals) -> str:
    parts = [f"{t.scenarios_passed} of {t.scenarios} scenarios passed"]
    parts.append(f"{t.invariants_passed} of {t.invariants} invariants held")
    if t.load_runs:
        parts.append(f"{t.load_runs_passed} of {t.load_runs} load runs passed")
    return ", ".join(parts)
