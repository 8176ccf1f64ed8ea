"""The self-contained HTML report: findings first, then verdicts, then one section per scenario.

No network: styles inline, charts as inline SVG, each chart beside a table of its data. The page
is well-formed XML (polyglot HTML), prints cleanly, and is byte-identical for the same results
except inside the delimited environment section at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from html import escape
from typing import Final

from harness.report import analysis as an
from harness.report import svg
from harness.report.model import (
    Comparison,
    Invariant,
    LoadResults,
    Report,
    Scenario,
)

__all__ = ["ENV_BEGIN", "ENV_END", "render_html"]

ENV_BEGIN: Final = "<!-- BEGIN ENVIRONMENT"
"""Opens the only part of any report output that may differ between two runs."""
ENV_END: Final = "<!-- END ENVIRONMENT -->"
_ENV_OPEN: Final = (
    f"{ENV_BEGIN}: generation time and machine; ignored by the reproducibility check -->"
)
_MAX_LANES: Final = 24
_MAX_TABLE_ROWS: Final = 60

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
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 10px; overflow: auto;
  white-space: pre-wrap; }
.verdict { font-size: 1.15rem; font-weight: 600; padding: 8px 12px; border-radius: 4px;
  display: inline-block; }
.pass { color: #0b5d1e; }
.fail { color: #a4141c; }
.verdict.pass { background: #e6f4ea; border: 1px solid #0b5d1e; }
.verdict.fail { background: #fdecea; border: 1px solid #a4141c; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.9rem; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.finding { border-left: 4px solid #0072B2; padding: 4px 14px; margin: 14px 0; background: #f8fbfd; }
.finding.unmeasured { border-left-color: #999; }
.source { color: #444; font-size: 0.9rem; }
.pair { display: grid; grid-template-columns: minmax(0, 660px) minmax(0, 1fr); gap: 16px;
  align-items: start; margin: 8px 0 18px; break-inside: avoid; }
.pair svg { max-width: 100%; height: auto; }
.data { max-height: 360px; overflow: auto; }
figure { margin: 0; }
figcaption { font-size: 0.9rem; color: #333; margin-top: 4px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
nav ol { columns: 2; }
footer { margin-top: 40px; padding-bottom: 30px; font-size: 0.85rem; color: #333; }
@media (max-width: 1100px) { .pair { grid-template-columns: 1fr; } }
@media print {
  nav, .skip { display: none; }
  body { font-size: 10pt; }
  header, main, footer { max-width: none; padding: 0; }
  .data { max-height: none; overflow: visible; }
  .pair { grid-template-columns: 1fr; }
  section.scenario { break-before: page; }
  h2, h3, h4 { break-after: avoid; }
  tr, figure, .finding { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
}
"""


class _Ids:
    """Deterministic, unique element ids."""

    def __init__(self) -> None:
        self._n = 0
        self._used: set[str] = set()

    def chart(self) -> str:
        self._n += 1
        return f"chart-{self._n}"

    def slug(self, text: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        slug, n = base, 1
        while slug in self._used:
            n += 1
            slug = f"{base}-{n}"
        self._used.add(slug)
        return slug


def _e(s: object) -> str:
    return escape(svg.clean(s), quote=True)


def _verdict(passed: bool, yes: str = "held", no: str = "broken") -> str:
    cls = "pass" if passed else "fail"
    text = f"\u2714 {yes}" if passed else f"\u2718 {no}"
    return f'<span class="{cls}">{text}</span>'


def _table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    raw: bool = False,
    note: str = "",
) -> str:
    """A table with a caption; the first cell of each row is its header. `raw` cells are HTML."""
    out = [f"<table><caption>{_e(caption)}</caption><thead><tr>"]
    out += [f'<th scope="col">{_e(c)}</th>' for c in columns]
    out.append("</tr></thead><tbody>")
    shown = rows[:_MAX_TABLE_ROWS]
    for row in shown:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = cell if raw else _e(cell)
            if i == 0:
                out.append(f'<th scope="row">{text}</th>')
            else:
                cls = ' class="num"' if i in numeric else ""
                out.append(f"<td{cls}>{text}</td>")
        out.append("</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(columns)}">No data recorded.</td></tr>')
    out.append("</tbody></table>")
    if len(rows) > len(shown):
        note = (
            f"{len(rows) - len(shown)} more rows are not shown here; report.json holds them all. "
            + note
        )
    if note:
        out.append(f'<p class="source">{_e(note.strip())}</p>')
    return "".join(out)


def _pair(chart: str, table: str, caption: str) -> str:
    return (
        f'<figure class="pair"><div class="chart-box">{chart}'
        f"<figcaption>{_e(caption)}</figcaption></div>"
        f'<div class="data">{table}</div></figure>'
    )


def _fmt_cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return svg.fmt_num(v)
    return "" if v is None else str(v)


def _header(report: Report, t: an.Totals) -> Iterator[str]:
    yield "<header>"
    yield "<h1>Reliability report</h1>"
    parts = [f"{t.scenarios_passed} of {t.scenarios} scenarios passed"]
    parts.append(f"{t.invariants_passed} of {t.invariants} invariants held")
    if t.load_runs:
        parts.append(f"{t.load_runs_passed} of {t.load_runs} load runs passed")
    cls = "pass" if t.passed else "fail"
    word = "\u2714 PASSED" if t.passed else "\u2718 FAILED"
    yield f'<p class="verdict {cls}" role="status">{word}: {_e(", ".join(parts))}</p>'
    for c in report.chaos:
        yield (
            f"<p>Chaos run with seed <strong>{c.seed}</strong>; reproduce with "
            f"<code>{_e(c.command or 'reliability-harness chaos --seed ' + str(c.seed))}</code>"
            "</p>"
        )
    for lr in report.load:
        if lr.command:
            yield f"<p>Load run; reproduce with <code>{_e(lr.command)}</code></p>"
    yield "</header>"


def _nav(entries: Sequence[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in entries)
    return f'<nav aria-label="Contents"><h2>Contents</h2><ol>{items}</ol></nav>'


def _findings(fs: Sequence[an.Finding]) -> Iterator[str]:
    yield '<section id="findings" aria-labelledby="findings-h">'
    yield '<h2 id="findings-h">Findings: where the seed\'s design fails, and the fix</h2>'
    for f in fs:
        cls = "finding" if f.measured else "finding unmeasured"
        yield f'<article class="{cls}" id="finding-{_e(f.key)}"><h3>{_md_code(f.title)}</h3>'
        yield f"<p><strong>Seed design.</strong> {_md_code(f.seed_design)}</p>"
        yield f"<p><strong>Fixed design.</strong> {_md_code(f.fixed_design)}</p>"
        if f.evidence:
            yield _table("The numbers", ("measured", "value"), [list(e) for e in f.evidence])
        label = "Numbers from" if f.measured else "Note"
        yield f'<p class="source">{label}: {_md_code(f.source)}</p></article>'
    yield "</section>"


def _md_code(text: str) -> str:
    """Escape, then render `backticked` spans as code."""
    parts = _e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _verdicts(report: Report, slugs: Sequence[str]) -> Iterator[str]:
    yield '<section id="verdicts" aria-labelledby="verdicts-h">'
    yield '<h2 id="verdicts-h">Verdict per scenario and invariant</h2>'
    rows: list[list[str]] = []
    for s, slug in zip(report.scenarios, slugs, strict=True):
        held = sum(1 for i in s.invariants if i.passed)
        invs = ", ".join(
            f"{_e(i.name)} {_verdict(i.passed, 'held', 'BROKEN')}" for i in s.invariants
        )
        rows.append(
            [
                f'<a href="#{slug}">{_e(s.name)}</a>',
                _verdict(s.passed, "passed", "failed"),
                f"{held} of {len(s.invariants)}",
                invs or "none checked",
                str(s.seed),
                _e(svg.fmt_duration(s.simulated_seconds)),
                f"<code>{_e(s.trace_hash[:16])}</code>" if s.trace_hash else "",
            ]
        )
    yield _table(
        "Scenarios",
        (
            "scenario",
            "verdict",
            "invariants held",
            "invariants",
            "seed",
            "simulated time",
            "trace hash",
        ),
        rows,
        numeric=(4,),
        raw=True,
    )
    yield "</section>"


def _invariants_table(invs: Sequence[Invariant], caption: str) -> Iterator[str]:
    rows = [
        [
            _e(i.name),
            _verdict(i.passed),
            "" if i.checked is None else f"{i.checked:,}",
            _e(i.details),
        ]
        for i in invs
    ]
    yield _table(caption, ("invariant", "verdict", "checked", "details"), rows, raw=True)
    for i in invs:
        if i.counterexample is not None:
            body = json.dumps(i.counterexample, indent=2, sort_keys=True, ensure_ascii=False)
            yield f"<h4>Counterexample: {_e(i.name)}</h4><pre>{_e(body)}</pre>"


def _scenario(s: Scenario, slug: str, ids: _Ids) -> Iterator[str]:
    yield f'<section class="scenario" id="{slug}" aria-labelledby="{slug}-h">'
    yield f'<h2 id="{slug}-h">Scenario: {_e(s.name)} {_verdict(s.passed, "passed", "failed")}</h2>'
    if s.description:
        yield f"<p>{_e(s.description)}</p>"
    yield '<dl class="meta">'
    meta = [
        ("Reproduce", f"<code>{_e(s.command)}</code>" if s.command else "not recorded"),
        ("Seed", str(s.seed)),
        ("Scenario file", f"<code>{_e(s.file)}</code>" if s.file else ""),
        ("Store", _e(s.store)),
        ("Simulated time", _e(svg.fmt_duration(s.simulated_seconds))),
        ("Trace hash", f"<code>{_e(s.trace_hash)}</code>" if s.trace_hash else ""),
    ]
    for k, v in meta:
        if v:
            yield f"<dt>{k}</dt><dd>{v}</dd>"
    yield "</dl>"
    yield f"<h3>Invariants of {_e(s.name)}</h3>"
    yield from _invariants_table(s.invariants, f"Invariants checked in {s.name}")
    if s.figures:
        yield f"<h3>Key figures of {_e(s.name)}</h3>"
        yield _table(
            f"Figures of {s.name}",
            ("figure", "value"),
            [[an.humanize(k), svg.fmt_num(v)] for k, v in s.figures.items()],
            numeric=(1,),
        )
    yield from _retry_delays(s, ids)
    yield from _breakers(s, ids)
    yield from _dlq(s, ids)
    yield from _arrivals(s, ids)
    if s.comparison is not None:
        yield from _comparison(s, s.comparison, ids)
    yield "</section>"


def _retry_delays(s: Scenario, ids: _Ids) -> Iterator[str]:
    groups = an.delays_by_strategy(s.series.retry_delays)
    if not groups:
        return
    yield "<h3>Retry delays against their bounds, per strategy</h3>"
    for g in groups:
        yield (
            f"<h4>Strategy {_e(g.strategy)}: {g.count:,} delays, "
            f"{_verdict(g.outside == 0, 'all inside bounds', f'{g.outside} outside bounds')}</h4>"
        )
        rows = [
            [
                str(a.attempt),
                f"{a.count:,}",
                svg.fmt_duration(a.low),
                svg.fmt_duration(a.high),
                svg.fmt_duration(a.minimum),
                svg.fmt_duration(a.median),
                svg.fmt_duration(a.maximum),
                str(a.outside),
            ]
            for a in g.attempts
        ]
        table = _table(
            f"Retry delays of {g.strategy} per attempt",
            ("attempt", "delays", "low bound", "high bound", "min", "median", "max", "outside"),
            rows,
            numeric=(1, 2, 3, 4, 5, 6, 7),
        )
        chart = svg.range_chart(
            chart_id=ids.chart(),
            title=f"Retry delays of strategy {g.strategy} against their bounds, per attempt",
            desc=(
                f"For each attempt, the promised range (dashed box) and the observed minimum to "
                f"maximum delay (bar). {g.outside} of {g.count} delays fall outside their bounds."
            ),
            items=[
                svg.RangeItem(str(a.attempt), a.low, a.high, a.minimum, a.maximum, a.outside)
                for a in g.attempts
            ],
            x_label="attempt",
            y_label="delay",
        )
        yield _pair(chart, table, "Observed delays per attempt against the strategy's bounds.")
        if g.positions:
            edges = [round(-0.1 + 0.1 * i, 10) for i in range(13)]
            counts = [0] * 12
            for p in g.positions:
                counts[an.position_bin(p)] += 1
            hist = svg.histogram(
                chart_id=ids.chart(),
                title=f"Where the {g.strategy} delays fall inside their bounds",
                desc=(
                    "Histogram of (delay - low bound) / (high bound - low bound): 0 is the low "
                    "bound, 1 the high bound; bars left of 0 or right of 1 would be violations. "
                    f"{len(g.positions)} delays."
                ),
                edges=edges,
                counts=counts,
                bounds=[svg.Bound(0.0, "low bound"), svg.Bound(1.0, "high bound")],
                x_label="position inside the bounds (0 = low, 1 = high)",
            )
            htable = _table(
                f"Position of {g.strategy} delays inside their bounds",
                ("position", "delays"),
                [
                    [f"{svg.fmt_num(edges[i])} to {svg.fmt_num(edges[i + 1])}", f"{c:,}"]
                    for i, c in enumerate(counts)
                ],
                numeric=(1,),
            )
            yield _pair(hist, htable, "A flat histogram between the markers means well-spread.")
        else:
            yield (
                f"<p>Strategy {_e(g.strategy)} has no jitter: every delay's low and high bound "
                "coincide, so there is no spread to draw.</p>"
            )


def _breakers(s: Scenario, ids: _Ids) -> Iterator[str]:
    if not s.series.breaker_timeline:
        return
    lanes = an.breaker_lanes(s.series.breaker_timeline, s.simulated_seconds)
    yield "<h3>Breaker state per tenant over simulated time</h3>"
    end = max([s.simulated_seconds, *(seg[1] for _, segs in lanes for seg in segs)])
    states = sorted(
        {seg[2] for _, segs in lanes for seg in segs},
        key=lambda x: (
            ["closed", "open", "half_open"].index(x) if x in ("closed", "open", "half_open") else 3,
            x,
        ),
    )

    def not_closed(segs: Sequence[tuple[float, float, str]]) -> float:
        return sum(b - a for a, b, st in segs if st != "closed")

    chosen = sorted(lanes, key=lambda ln: (-not_closed(ln[1]), ln[0]))[:_MAX_LANES]
    chosen.sort(key=lambda ln: ln[0])
    more = len(lanes) - len(chosen)
    chart = svg.timeline_chart(
        chart_id=ids.chart(),
        title=f"Circuit breaker state per tenant in {s.name}",
        desc=(
            f"One row per tenant ({len(chosen)} of {len(lanes)} shown, those longest not closed), "
            "each coloured segment the breaker's state from one change to the next."
        ),
        lanes=[svg.Lane(t, segs) for t, segs in chosen],
        x_end=end,
        x_label="simulated time",
        states=states,
    )
    rows = []
    for tenant, segs in lanes:
        opens = sum(1 for _, _, st in segs if st == "open")
        open_t = sum(b - a for a, b, st in segs if st == "open")
        half_t = sum(b - a for a, b, st in segs if st == "half_open")
        seq = " \u2192 ".join(f"{st} @{svg.fmt_duration(a, end)}" for a, _, st in segs[:6])
        if len(segs) > 6:
            seq += f" \u2192 \u2026 ({len(segs) - 6} more)"
        rows.append(
            [
                tenant,
                str(len(segs)),
                str(opens),
                svg.fmt_duration(open_t),
                svg.fmt_duration(half_t),
                seq,
            ]
        )
    table = _table(
        "Breaker changes per tenant",
        ("tenant", "changes", "times opened", "time open", "time half-open", "sequence"),
        rows,
        numeric=(1, 2, 3, 4),
    )
    note = f" {more} quieter tenants are in the table only." if more else ""
    yield _pair(chart, table, "Green closed, orange half-open, red (outlined) open." + note)


def _variant_title(variant: str, variants: Sequence[str]) -> str:
    """A heading for one variant's charts ("" when the scenario has a single variant)."""
    if len(variants) <= 1:
        return ""
    if variant == "":
        return "Retry budget off" if "budget on" in variants else "Base run"
    if variant.startswith("budget "):
        return f"Retry budget {variant.removeprefix('budget ')}"
    return f"Variant {variant}"


def _dlq(s: Scenario, ids: _Ids) -> Iterator[str]:
    all_depth = sorted(s.series.dlq_depth, key=lambda p: p.t)
    all_purges = [p for p in sorted(s.series.dlq_purges, key=lambda p: p.t) if p.value > 0]
    if not all_depth and not all_purges:
        return
    yield "<h3>Dead-letter queue: visible depth, TTL expiry and purges</h3>"
    ttl = [(k, v) for k, v in s.figures.items() if "ttl" in k.lower()]
    ttl_words = "; ".join(f"{an.humanize(k)} {svg.fmt_num(v)}" for k, v in ttl)
    end = max([s.simulated_seconds, *(p.t for p in all_depth), *(p.t for p in all_purges)])
    variants = sorted({p.variant for p in (*all_depth, *all_purges)})
    for variant in variants:
        heading = _variant_title(variant, variants)
        where = f" ({heading.lower()})" if heading else ""
        if heading:
            yield f"<h4>{_e(heading)}</h4>"
        depth_pts = [p for p in all_depth if p.variant == variant]
        purges = [p for p in all_purges if p.variant == variant]
        lines = [
            (g or "visible DLQ entries", [(p.t, p.value) for p in depth_pts if p.group == g])
            for g in sorted({p.group for p in depth_pts}, key=an.strategy_key)
        ]
        shown = purges
        if len(purges) > 60:
            shown = sorted(sorted(purges, key=lambda p: (-p.value, p.t))[:60], key=lambda p: p.t)
        chart = svg.line_chart(
            chart_id=ids.chart(),
            title=f"Visible DLQ depth over simulated time in {s.name}{where}",
            desc=(
                "Entries visible to reads (an entry disappears at its expires_at, before "
                f"cleanup); dashed vertical lines mark the {len(shown)} cleanups that purged "
                "expired rows"
                + (
                    f" ({len(purges)} in all, the largest shown)."
                    if len(shown) < len(purges)
                    else "."
                )
                + (f" {ttl_words}." if ttl_words else "")
            ),
            lines=[svg.Line(g, pts) for g, pts in lines],
            x_label="simulated time",
            y_label="entries",
            step=True,
            markers=[
                svg.Bound(p.t, f"purged {svg.fmt_num(p.value)} at {svg.fmt_duration(p.t)}")
                for p in shown
            ],
            x_time=True,
            x_end=end,
        )
        bt = an.bucket_table(lines)
        table = _table(
            f"DLQ depth over time{where}", bt.columns, bt.rows, numeric=range(1, len(bt.columns))
        )
        ptable = _table(
            f"Purges of expired entries{where}",
            ("simulated time", "entries purged"),
            [[svg.fmt_duration(p.t, end), svg.fmt_num(p.value)] for p in purges],
            numeric=(1,),
        )
        caption = "Depth drops at each entry's TTL expiry; purges then remove the expired rows."
        if ttl_words:
            caption += f" ({ttl_words}.)"
        yield _pair(chart, table + ptable, caption)


def _arrivals(s: Scenario, ids: _Ids) -> Iterator[str]:
    if not s.series.arrivals:
        return
    herd = s.comparison is not None and s.comparison.kind == "herd"
    several = herd or len({p.group for p in s.series.arrivals}) > 1
    what = " per jitter strategy" if several else ""
    yield f"<h3>Arrivals per second at n8n{what}</h3>"
    end = max([s.simulated_seconds, *(p.t for p in s.series.arrivals)])
    variants = an.arrival_variants(s.series.arrivals)
    for variant in variants:
        heading = _variant_title(variant, variants)
        where = f" ({heading.lower()})" if heading else ""
        if heading:
            yield f"<h4>{_e(heading)}</h4>"
        points = [p for p in s.series.arrivals if p.variant == variant]
        rates = an.arrival_rates(points)
        counts = an.arrival_lines(points)
        named = [(g.removesuffix(f", {variant}") or "arrivals", pts) for g, _, pts in rates]
        buckets = sorted({b for _, b, _ in rates})
        per = (
            f", averaged over {' / '.join(svg.fmt_duration(b) for b in buckets)} buckets"
            if buckets and max(buckets) > 1
            else ""
        )
        chart = svg.line_chart(
            chart_id=ids.chart(),
            title=f"Calls arriving at n8n per second in {s.name}{where}",
            desc=(
                f"Arrivals per second over simulated time{per}"
                + (", one line per jitter strategy" if len(named) > 1 else "")
                + "; a tall narrow spike is a herd retrying in lockstep. Peaks: "
                + ", ".join(f"{g} {svg.fmt_num(max(v for _, v in pts))}/s" for g, pts in named)
                + "."
            ),
            lines=[svg.Line(g, pts) for g, pts in named],
            x_label="simulated time",
            y_label="arrivals per second",
            x_time=True,
            x_end=end,
        )
        summary = _table(
            f"Arrivals summary{where}",
            ("line", "peak per second", "peak at", "total arrivals", "last arrival"),
            [
                [
                    g,
                    svg.fmt_num(max(v for _, v in pts)),
                    svg.fmt_duration(max(pts, key=lambda p: (p[1], -p[0]))[0], end),
                    svg.fmt_num(sum(v for _, v in raw)),
                    svg.fmt_duration(max((t for t, v in raw if v > 0), default=0.0), end),
                ]
                for (g, pts), (_, raw) in zip(named, counts, strict=True)
            ],
            numeric=(1, 2, 3, 4),
        )
        bt = an.bucket_table(named)
        table = _table(
            f"Arrivals per second over time{where}",
            bt.columns,
            bt.rows,
            numeric=range(1, len(bt.columns)),
        )
        yield _pair(chart, summary + table, f"Arrivals per second at n8n{where}{per}.")


def _comparison(s: Scenario, c: Comparison, ids: _Ids) -> Iterator[str]:
    title = {
        "herd": "Herd comparison: jitter strategies against an n8n that recovers",
        "replay": "Replay comparison: the seed's last-event-id ledger versus the fixed design",
    }.get(c.kind, f"Comparison: {c.kind}")
    yield f"<h3>{_e(title)}</h3>"
    nums = an.numeric_columns(c)
    table = _table(
        f"{c.kind} comparison in {s.name}",
        c.columns,
        [[_fmt_cell(x) for x in row] for row in c.rows],
        numeric=nums,
    )
    labels = [an.row_label(c, r) for r in c.rows]
    keys = [i for i in range(len(c.columns)) if i not in nums]
    charts: list[str] = []
    for i in nums:
        col = an.humanize(c.columns[i])
        vals = [_as_float(r[i]) for r in c.rows]
        if len(keys) == 2:
            # Two label columns (strategy x budget): groups of bars, one bar per second key.
            cats = list(dict.fromkeys(_key_text(c, keys[0], r) for r in c.rows))
            subs = list(dict.fromkeys(_key_text(c, keys[1], r) for r in c.rows))
            cell = {
                (_key_text(c, keys[0], r), _key_text(c, keys[1], r)): _as_float(r[i])
                for r in c.rows
            }
            series = [(sub, [cell.get((cat, sub), 0.0) for cat in cats]) for sub in subs]
        else:
            cats, series = labels, [(col, vals)]
        charts.append(
            svg.bar_chart(
                chart_id=ids.chart(),
                title=f"{col} per {c.kind} variant in {s.name}",
                desc=f"{col}: "
                + ", ".join(f"{lb} {svg.fmt_num(v)}" for lb, v in zip(labels, vals, strict=True))
                + ".",
                categories=cats,
                series=series,
                y_label=col,
            )
        )
    if not charts:
        yield table
        return
    yield _pair(charts[0], table, f"{an.humanize(c.columns[nums[0]])} per variant.")
    for ch, i in zip(charts[1:], nums[1:], strict=True):
        col = an.humanize(c.columns[i])
        small = _table(
            f"{col} per variant",
            ("variant", col),
            [[lb, _fmt_cell(r[i])] for lb, r in zip(labels, c.rows, strict=True)],
            numeric=(1,),
        )
        yield _pair(ch, small, f"{col} per variant.")


def _as_float(v: object) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _key_text(c: Comparison, i: int, row: Sequence[object]) -> str:
    v = row[i]
    if isinstance(v, bool):
        return f"{an.humanize(c.columns[i])} {'on' if v else 'off'}"
    return "" if v is None else str(v)


def _load(lr: LoadResults, n: int, ids: _Ids, slug: str) -> Iterator[str]:
    yield f'<section class="load" id="{slug}" aria-labelledby="{slug}-h">'
    suffix = f" {n}" if n else ""
    yield (f'<h2 id="{slug}-h">Load test{suffix} {_verdict(lr.passed, "passed", "failed")}</h2>')
    if lr.command:
        yield f"<p>Reproduce with <code>{_e(lr.command)}</code></p>"
    if lr.config:
        yield _table(
            "Load configuration",
            ("setting", "value"),
            [[k, json.dumps(v, sort_keys=True)] for k, v in lr.config.items()],
        )
    if lr.threshold_results:
        yield _table(
            "Thresholds",
            ("threshold", "verdict", "limit", "measured"),
            [
                [
                    _e(t.name),
                    _verdict(t.passed, "met", "missed"),
                    svg.fmt_num(t.limit),
                    svg.fmt_num(t.value),
                ]
                for t in lr.threshold_results
            ],
            numeric=(2, 3),
            raw=True,
        )
    if lr.invariants:
        yield from _invariants_table(lr.invariants, "Load-test invariants")
    if lr.stats:
        yield "<h3>Latency percentiles per endpoint</h3>"
        names = [f"{st.method} {st.name}".strip() for st in lr.stats]
        chart = svg.bar_chart(
            chart_id=ids.chart(),
            title="Latency percentiles per endpoint (ms)",
            desc="p50, p95 and p99 latency per endpoint: "
            + "; ".join(
                f"{nm} {svg.fmt_num(st.p50)}/{svg.fmt_num(st.p95)}/{svg.fmt_num(st.p99)} ms"
                for nm, st in zip(names, lr.stats, strict=True)
            ),
            categories=names,
            series=[
                ("p50", [st.p50 or 0.0 for st in lr.stats]),
                ("p95", [st.p95 or 0.0 for st in lr.stats]),
                ("p99", [st.p99 or 0.0 for st in lr.stats]),
            ],
            y_label="milliseconds",
        )
        table = _table(
            "Requests per endpoint",
            ("endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"),
            [
                [
                    nm,
                    f"{st.requests:,}",
                    f"{st.failures:,}",
                    svg.fmt_num(st.rps),
                    svg.fmt_num(st.p50),
                    svg.fmt_num(st.p95),
                    svg.fmt_num(st.p99),
                    svg.fmt_num(st.max),
                ]
                for nm, st in zip(names, lr.stats, strict=True)
            ],
            numeric=range(1, 8),
        )
        yield _pair(chart, table, "Latency percentiles per endpoint.")
    if lr.history:
        hist = sorted(lr.history, key=lambda p: p.t)
        yield "<h3>Latency and throughput over time</h3>"
        lat = [
            ("p50 ms", [(p.t, p.p50) for p in hist if p.p50 is not None]),
            ("p95 ms", [(p.t, p.p95) for p in hist if p.p95 is not None]),
        ]
        yield _over_time(
            ids,
            lat,
            title="Latency over the load run",
            desc="p50 and p95 response time in milliseconds over the run. Highest p95: "
            f"{svg.fmt_num(max((v for _, v in lat[1][1]), default=None))} ms.",
            y_label="milliseconds",
            name="Latency over time",
        )
        thr = [
            ("requests/s", [(p.t, p.rps) for p in hist if p.rps is not None]),
            ("users", [(p.t, float(p.users)) for p in hist]),
        ]
        yield _over_time(
            ids,
            thr,
            title="Throughput and users over the load run",
            desc="Requests per second and simulated users over the run. Highest: "
            f"{svg.fmt_num(max((v for _, v in thr[0][1]), default=None))} requests/s.",
            y_label="per second / users",
            name="Throughput over time",
        )
    yield "</section>"


def _over_time(
    ids: _Ids,
    series: list[tuple[str, list[tuple[float, float]]]],
    *,
    title: str,
    desc: str,
    y_label: str,
    name: str,
) -> str:
    """A line chart of load-run series over time, with its table of bucket means beside it."""
    chart = svg.line_chart(
        chart_id=ids.chart(),
        title=title,
        desc=desc,
        lines=[svg.Line(n, pts) for n, pts in series],
        x_label="time into the run",
        y_label=y_label,
        x_time=True,
    )
    bt = an.bucket_table(series, time_label="time", stat="mean")
    return _pair(chart, _table(name, bt.columns, bt.rows, numeric=(1, 2)), f"{name}.")


def _environment(report: Report, generated_at: str, generator: str) -> Iterator[str]:
    yield _ENV_OPEN
    yield '<section id="environment" aria-labelledby="environment-h">'
    yield '<h2 id="environment-h">Generation time and environment</h2>'
    yield (
        "<p>This section differs between runs and machines; everything above it is a "
        "function of the seed and the scenario catalogue.</p>"
    )
    rows = [["report generated at", generated_at], ["report generator", generator]]
    for res in report.inputs:
        rows.append([f"input {res.path}", f"results generated at {res.generated_at}"])
        rows += [[f"  {k}", v] for k, v in res.environment.items()]
    yield _table("Generation", ("what", "value"), rows)
    walls = [s for s in report.scenarios if s.wall_seconds is not None]
    if walls:
        wrows = []
        for s in walls:
            w = s.wall_seconds or 0.0
            ratio = f"{svg.fmt_num(s.simulated_seconds / w)} : 1" if w > 0 else ""
            wrows.append([s.name, f"{w:.2f} s", ratio])
        yield _table(
            "Wall-clock time per scenario",
            ("scenario", "wall time", "simulated : wall"),
            wrows,
            numeric=(1, 2),
        )
    yield "</section>"
    yield ENV_END


def render_html(report: Report, *, generated_at: str, generator: str) -> str:
    """The whole page as one string (UTF-8 text)."""
    ids = _Ids()
    t = an.totals(report)
    slugs = [ids.slug(f"scenario-{s.name}") for s in report.scenarios]
    load_slugs = [ids.slug(f"load-{i + 1}") for i in range(len(report.load))]
    nav = [("findings", "Findings")]
    if report.scenarios:
        nav.append(("verdicts", "Verdicts"))
    nav += [(sl, f"Scenario {s.name}") for s, sl in zip(report.scenarios, slugs, strict=True)]
    nav += [(sl, f"Load test {i + 1}") for i, sl in enumerate(load_slugs)]
    nav.append(("environment", "Generation and environment"))
    title = "Reliability report: " + ("passed" if t.passed else "FAILED")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en" xmlns="http://www.w3.org/1999/xhtml">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        '<meta name="generator" content="reliability-harness report"/>',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        '<a class="skip" href="#main">Skip to the report</a>',
    ]
    out += _header(report, t)
    out.append(_nav(nav))
    out.append('<main id="main">')
    out += _findings(an.findings(report))
    if report.scenarios:
        out += _verdicts(report, slugs)
    for s, slug in zip(report.scenarios, slugs, strict=True):
        out += _scenario(s, slug, ids)
    for i, (lr, slug) in enumerate(zip(report.load, load_slugs, strict=True)):
        out += _load(lr, i + 1 if len(report.load) > 1 else 0, ids, slug)
    out.append("</main>")
    out.append("<footer>")
    out += _environment(report, generated_at, generator)
    out.append("</footer>")
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"
