"""The self-contained HTML report: findings first, then verdicts, then one section per scenario.

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
from harness.report.findings import STEP06, Finding, findings
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

_CSS: Final = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; margin: 0; color: #1b1b1b; background: #fff; line-height: 1.45; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px; }
header, main, footer, nav { max-width: 1280px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { font-size: 1.8rem; margin: 0 0 6px; }
h2 { font-size: 1.4rem; margin: 32px 0 10px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.15rem; margin: 22px 0 8px; }
h4 { font-size: 1rem; margin: 16px 0 6px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.9em; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; overflow-wrap: anywhere; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 10px; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.verdict { font-size: 1.15rem; font-weight: 600; padding: 8px 12px; border-radius: 4px;
  display: inline-block; }
.pass { color: #0b5d1e; }
.fail { color: #a4141c; }
.verdict.pass { background: #e6f4ea; border: 1px solid #0b5d1e; }
.verdict.fail { background: #fdecea; border: 1px solid #a4141c; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.9rem; max-width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
thead th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.finding { border-left: 4px solid #0072B2; padding: 4px 14px; margin: 14px 0; background: #f8fbfd; }
.finding.unmeasured { border-left-color: #999; }
.source { color: #444; font-size: 0.9rem; }
.pair { display: grid; grid-template-columns: minmax(0, 660px) minmax(0, 1fr); gap: 16px;
  align-items: start; margin: 8px 0 18px; break-inside: avoid; }
.pair svg { max-width: 100%; height: auto; }
.data { min-width: 0; }
figure { margin: 0; }
figcaption { font-size: 0.9rem; color: #333; margin-top: 4px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
nav ol { columns: 2; }
footer { margin-top: 40px; padding-bottom: 30px; font-size: 0.85rem; color: #333; }
@media (max-width: 1100px) { .pair { grid-template-columns: 1fr; } }
@media (max-width: 900px) { td.num { white-space: normal; } nav ol { columns: 1; }
  dl.meta { grid-template-columns: 1fr; } }
@media print {
  nav, .skip { display: none; }
  body { font-size: 10pt; }
  header, main, footer { max-width: none; padding: 0; }
  .pair { grid-template-columns: 1fr; }
  section.scenario { break-before: page; }
  h2, h3, h4 { break-after: avoid; }
  tr, figure, .finding { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
}
"""


def _header(report: Report, t: an.Totals, options: ReportOptions) -> Iterator[str]:
    yield "<header>"
    yield f"<h1>{hb.esc(options.title)}</h1>"
    parts = [f"{t.scenarios_passed} of {t.scenarios} scenarios passed"]
    parts.append(f"{t.invariants_passed} of {t.invariants} invariants held")
    if t.load_runs:
        parts.append(f"{t.load_runs_passed} of {t.load_runs} load runs passed")
    cls = "pass" if t.passed else "fail"
    word = "\u2714 PASSED" if t.passed else "\u2718 FAILED"
    yield f'<p class="verdict {cls}" role="status">{word}: {hb.esc(", ".join(parts))}</p>'
    for c in report.chaos:
        words, command = hb.esc(an.chaos_run_words(c)), hb.esc(an.chaos_command(c))
        yield f"<p>{words}; reproduce with <code>{command}</code></p>"
    for lr in report.load:
        if lr.command:
            yield f"<p>Load run; reproduce with <code>{hb.esc(lr.command)}</code></p>"
    yield "</header>"


def _nav(entries: Sequence[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="#{a}">{hb.esc(t)}</a></li>' for a, t in entries)
    return f'<nav aria-label="Contents"><h2>Contents</h2><ol>{items}</ol></nav>'


def _findings(fs: Sequence[Finding]) -> Iterator[str]:
    yield '<section id="findings" aria-labelledby="findings-h">'
    yield '<h2 id="findings-h">Findings: where the Step 06 design fails, and the fix</h2>'
    yield f"<p>{hb.esc(STEP06)}</p>"
    for f in fs:
        cls = "finding" if f.measured else "finding unmeasured"
        yield f'<article class="{cls}" id="finding-{hb.esc(f.key)}"><h3>{hb.md_code(f.title)}</h3>'
        yield f"<p><strong>Step 06 design.</strong> {hb.md_code(f.step06_design)}</p>"
        yield f"<p><strong>Fixed design.</strong> {hb.md_code(f.fixed_design)}</p>"
        if f.evidence:
            yield hb.table("The numbers", ("measured", "value"), [list(e) for e in f.evidence])
        label = "Numbers from" if f.measured else "Note"
        yield f'<p class="source">{label}: {hb.md_code(f.source)}</p></article>'
    yield "</section>"


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
    """The whole page as one string (UTF-8 text)."""
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
    title = f"{options.title}: " + ("passed" if t.passed else "FAILED")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en" xmlns="http://www.w3.org/1999/xhtml">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        '<meta name="generator" content="reliability-harness report"/>',
        f"<title>{hb.esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        '<a class="skip" href="#main">Skip to the report</a>',
    ]
    out += _header(report, t, options)
    out.append(_nav(nav))
    out.append('<main id="main">')
    if options.about:
        out.append('<section id="about" aria-labelledby="about-h">')
        out.append('<h2 id="about-h">About this report</h2>')
        out.append(about_html(options.about))
        out.append("</section>")
    if options.findings:
        out += _findings(findings(report))
    if report.scenarios:
        out += _verdicts(report, slugs)
    for s, slug in zip(report.scenarios, slugs, strict=True):
        out += _scenario(s, slug, ids)
    for i, (lr, slug) in enumerate(zip(report.load, load_slugs, strict=True)):
        out += html_tables.load(lr, i + 1 if len(report.load) > 1 else 0, ids, slug)
    out.append("</main>")
    out.append("<footer>")
    out += _environment(report, generated_at, generator)
    out.append("</footer>")
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"
