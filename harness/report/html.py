"""The self-contained HTML report: findings first, then verdicts, then one section per scenario.

The page is templates/page.html.j2 (Jinja2, autoescaped; its styles are templates/report.css);
the sections' tables and chart pairs come from the macros of templates/blocks.html.j2.

No network: styles inline, charts as inline SVG, each chart beside a table of its data. The page
is well-formed XML (polyglot HTML), prints cleanly, and is byte-identical for the same results
except inside the delimited environment section at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from harness.report import analysis as an
from harness.report import html_blocks as hb
from harness.report import html_series, html_tables, svg
from harness.report.findings import STEP06, findings
from harness.report.jinja import Markup, render_page
from harness.report.model import (
    Report,
    Scenario,
)
from harness.report.options import BUILT_IN, ReportOptions, about_html

__all__ = ["ENV_BEGIN", "ENV_END", "render_html"]

ENV_BEGIN: Final = "<!-- BEGIN ENVIRONMENT"
"""Opens the only part of any report output that may differ between two runs."""
ENV_END: Final = "<!-- END ENVIRONMENT -->"
_ENV_OPEN: Final = (
    f"{ENV_BEGIN}: generation time and machine; ignored by the reproducibility check -->"
)


def _verdicts(report: Report, slugs: Sequence[str]) -> Iterator[str]:
    yield '<section id="verdicts" aria-labelledby="verdicts-h">'
    yield '<h2 id="verdicts-h">Verdict per scenario and invariant</h2>'
    rows: list[list[str]] = []
    for s, slug in zip(report.scenarios, slugs, strict=True):
        held = sum(1 for i in s.invariants if i.passed)
        invs = ", ".join(
            f"{hb.esc(i.name)} {hb.verdict(i.passed, 'held', 'BROKEN')}" for i in s.invariants
        )
        rows.append(
            [
                f'<a href="#{slug}">{hb.esc(s.name)}</a>',
                hb.verdict(s.passed, "passed", "failed"),
                f"{held} of {len(s.invariants)}",
                invs or "none checked",
                str(s.seed),
                hb.esc(svg.fmt_duration(s.simulated_seconds)),
                f"<code>{hb.esc(s.trace_hash[:16])}</code>" if s.trace_hash else "",
            ]
        )
    yield hb.table(
        "Scenarios",
        (
            "scenario",
            "verdict",
            "invariants held",
            "invariants",
            "random seed",
            "simulated time",
            "trace hash",
        ),
        rows,
        numeric=(4,),
        raw=True,
    )
    yield "</section>"


def _scenario(s: Scenario, slug: str, ids: hb.Ids) -> Iterator[str]:
    yield f'<section class="scenario" id="{slug}" aria-labelledby="{slug}-h">'
    mark = hb.verdict(s.passed, "passed", "failed")
    yield f'<h2 id="{slug}-h">Scenario: {hb.esc(s.name)} {mark}</h2>'
    if s.description:
        yield f"<p>{hb.esc(s.description)}</p>"
    yield '<dl class="meta">'
    meta = [
        ("Reproduce", f"<code>{hb.esc(s.command)}</code>" if s.command else "not recorded"),
        ("Random seed", str(s.seed)),
        ("Scenario file", f"<code>{hb.esc(s.file)}</code>" if s.file else ""),
        ("Store", hb.esc(s.store)),
        ("Simulated time", hb.esc(svg.fmt_duration(s.simulated_seconds))),
        ("Trace hash", f"<code>{hb.esc(s.trace_hash)}</code>" if s.trace_hash else ""),
    ]
    for k, v in meta:
        if v:
            yield f"<dt>{k}</dt><dd>{v}</dd>"
    yield "</dl>"
    yield f"<h3>Invariants of {hb.esc(s.name)}</h3>"
    yield from hb.invariants_table(s.invariants, f"Invariants checked in {s.name}")
    if s.figures:
        yield f"<h3>Key figures of {hb.esc(s.name)}</h3>"
        plain, columns, grid = an.figure_tables(s.figures)
        if grid:
            yield hb.table(
                f"Figures of {s.name} per variant (rows) and measure (columns)",
                columns,
                grid,
                numeric=range(1, len(columns)),
            )
        if plain:
            yield hb.table(f"Figures of {s.name}", ("figure", "value"), plain, numeric=(1,))
    yield from html_series.retry_delays(s, ids)
    yield from html_series.breakers(s, ids)
    yield from html_series.dlq(s, ids)
    yield from html_series.arrivals(s, ids)
    yield from html_series.table_rows(s, ids)
    if s.comparison is not None:
        yield from html_tables.comparison(s, s.comparison, ids)
    yield "</section>"


def _environment(report: Report, generated_at: str, generator: str) -> Iterator[str]:
    yield _ENV_OPEN
    yield '<section id="environment" aria-labelledby="environment-h">'
    yield '<h2 id="environment-h">Generation time and environment</h2>'
    yield (
        "<p>This section differs between runs and machines; everything above it is a "
        "function of the random seeds and the scenario catalogue.</p>"
    )
    rows = [["report generated at", generated_at], ["report generator", generator]]
    for res in report.inputs:
        rows.append(
            [f"input {an.shown_path(str(res.path))}", f"results generated at {res.generated_at}"]
        )
        rows += [[f"  {k}", v] for k, v in res.environment.items()]
    yield hb.table("Generation", ("what", "value"), rows)
    walls = [s for s in report.scenarios if s.wall_seconds is not None]
    if walls:
        wrows = []
        for s in walls:
            w = s.wall_seconds or 0.0
            ratio = f"{svg.fmt_num(s.simulated_seconds / w)} : 1" if w > 0 else ""
            wrows.append([s.name, f"{w:.2f} s", ratio])
        yield hb.table(
            "Wall-clock time per scenario",
            ("scenario", "wall time", "simulated : wall"),
            wrows,
            numeric=(1, 2),
        )
    yield "</section>"
    yield ENV_END


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
    sections: list[str] = []
    if report.scenarios:
        sections.append("\n".join(_verdicts(report, slugs)))
    for s, slug in zip(report.scenarios, slugs, strict=True):
        sections.append("\n".join(_scenario(s, slug, ids)))
    for i, (lr, slug) in enumerate(zip(report.load, load_slugs, strict=True)):
        n = i + 1 if len(report.load) > 1 else 0
        sections.append("\n".join(html_tables.load(lr, n, ids, slug)))
    runs = [(an.chaos_run_words(c), an.chaos_command(c)) for c in report.chaos]
    runs += [("Load run", lr.command) for lr in report.load if lr.command]
    return render_page(
        title=options.title,
        passed=t.passed,
        summary=_summary(t),
        runs=runs,
        nav=nav,
        about=Markup(about_html(options.about)) if options.about else "",
        findings=findings(report) if options.findings else None,
        step06=STEP06,
        sections=[Markup(x) for x in sections],
        environment=Markup("\n".join(_environment(report, generated_at, generator))),
    )


def _summary(t: an.Totals) -> str:
    parts = [f"{t.scenarios_passed} of {t.scenarios} scenarios passed"]
    parts.append(f"{t.invariants_passed} of {t.invariants} invariants held")
    if t.load_runs:
        parts.append(f"{t.load_runs_passed} of {t.load_runs} load runs passed")
    return ", ".join(parts)
