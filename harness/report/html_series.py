"""The HTML sections of a scenario's time series: retry delays, breakers, DLQ depth, arrivals.

Each section pairs a chart with the table of the numbers it draws.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from harness.report import analysis as an
from harness.report import html_blocks as hb
from harness.report import svg
from harness.report.model import Scenario

__all__ = ["arrivals", "breakers", "dlq", "retry_delays"]

_MAX_LANES: Final = 24


def retry_delays(s: Scenario, ids: hb.Ids) -> Iterator[hb.Block]:
    groups = an.delays_by_strategy(s.series.retry_delays)
    if not groups:
        return
    yield hb.Heading(3, "Retry delays against their bounds, per strategy")
    for g in groups:
        yield hb.Heading(
            4,
            (
                f"Strategy {g.strategy}: {g.count:,} delays, ",
                hb.Mark(g.outside == 0, "all inside bounds", f"{g.outside} outside bounds"),
            ),
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
        table = hb.table(
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
        yield hb.pair(chart, table, "Observed delays per attempt against the strategy's bounds.")
        if g.positions:
            edges = [round(-0.1 + 0.1 * i, 10) for i in range(13)]
            counts = g.bins  # the same counts the verdict above is made of
            hist = svg.histogram(
                chart_id=ids.chart(),
                title=f"Where the {g.strategy} delays fall inside their bounds",
                desc=(
                    "Histogram of (delay - low bound) / (high bound - low bound): 0 is the low "
                    "bound, 1 the high bound (a delay at the cap is at 1, inside); bars left of 0 "
                    f"or right of 1 are violations: {counts[0] + counts[-1]} of "
                    f"{len(g.positions)} delays."
                ),
                edges=edges,
                counts=counts,
                bounds=[svg.Bound(0.0, "low bound"), svg.Bound(1.0, "high bound")],
                x_label="position inside the bounds (0 = low, 1 = high)",
                labels=an.POSITION_LABELS,
            )
            htable = hb.table(
                f"Position of {g.strategy} delays inside their bounds",
                ("position", "delays"),
                [[label, f"{c:,}"] for label, c in zip(an.POSITION_LABELS, counts, strict=True)],
                numeric=(1,),
            )
            yield hb.pair(hist, htable, "A flat histogram between the markers means well-spread.")
        else:
            yield hb.Para(
                f"Strategy {g.strategy} has no jitter: every delay's low and high bound "
                "coincide, so there is no spread to draw."
            )


def breakers(s: Scenario, ids: hb.Ids) -> Iterator[hb.Block]:
    if not s.series.breaker_timeline:
        return
    lanes = an.breaker_lanes(s.series.breaker_timeline, an.run_length(s))
    yield hb.Heading(3, "Breaker state per tenant over simulated time")
    end = max([an.run_length(s), *(seg[1] for _, segs in lanes for seg in segs)])
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
    table = hb.table(
        "Breaker changes per tenant",
        ("tenant", "changes", "times opened", "time open", "time half-open", "sequence"),
        rows,
        numeric=(1, 2, 3, 4),
    )
    note = f" {more} quieter tenants are in the table only." if more else ""
    yield hb.pair(chart, table, f"Breaker states: {svg.state_key(states)}." + note)


def _variant_title(variant: str, variants: Sequence[str]) -> str:
    """A heading for one variant's charts ("" when the scenario has a single variant)."""
    if len(variants) <= 1:
        return ""
    if variant == "":
        return "Retry budget off" if "budget on" in variants else "Base run"
    if variant.startswith("budget "):
        return f"Retry budget {variant.removeprefix('budget ')}"
    return f"Variant {variant}"


def dlq(s: Scenario, ids: hb.Ids) -> Iterator[hb.Block]:
    all_depth = sorted(s.series.dlq_depth, key=lambda p: p.t)
    all_purges = [p for p in sorted(s.series.dlq_purges, key=lambda p: p.t) if p.value > 0]
    if not all_depth and not all_purges:
        return
    yield hb.Heading(3, "Dead-letter queue: visible depth, TTL expiry and purges")
    ttl = [(k, v) for k, v in s.figures.items() if "ttl" in k.lower()]
    ttl_words = "; ".join(f"{an.humanize(k)} {svg.fmt_num(v)}" for k, v in ttl)
    end = max([an.run_length(s), *(p.t for p in all_depth), *(p.t for p in all_purges)])
    variants = sorted({p.variant for p in (*all_depth, *all_purges)})
    for variant in variants:
        heading = _variant_title(variant, variants)
        where = f" ({heading.lower()})" if heading else ""
        if heading:
            yield hb.Heading(4, heading)
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
        table = hb.table(
            f"DLQ depth over time{where}", bt.columns, bt.rows, numeric=range(1, len(bt.columns))
        )
        ptable = hb.table(
            f"Purges of expired entries{where}",
            ("simulated time", "entries purged"),
            [[svg.fmt_duration(p.t, end), svg.fmt_num(p.value)] for p in purges],
            numeric=(1,),
        )
        caption = "Depth drops at each entry's TTL expiry; purges then remove the expired rows."
        if ttl_words:
            caption += f" ({ttl_words}.)"
        yield hb.pair(chart, [table, ptable], caption)


def arrivals(s: Scenario, ids: hb.Ids) -> Iterator[hb.Block]:
    if not s.series.arrivals:
        return
    herd = s.comparison is not None and s.comparison.kind == "herd"
    several = herd or len({p.group for p in s.series.arrivals}) > 1
    what = " per jitter strategy" if several else ""
    yield hb.Heading(3, f"Arrivals per second at n8n{what}")
    variants = an.arrival_variants(s.series.arrivals)
    for variant in variants:
        heading = _variant_title(variant, variants)
        where = f" ({heading.lower()})" if heading else ""
        if heading:
            yield hb.Heading(4, heading)
        points = [p for p in s.series.arrivals if p.variant == variant]
        rates = an.arrival_rates(points)
        counts = an.arrival_lines(points)
        named = [(g.removesuffix(f", {variant}") or "arrivals", pts) for g, _, pts in rates]
        buckets = sorted({b for _, b, _ in rates})
        per = f", counted in {' / '.join(svg.fmt_duration(b) for b in buckets)} buckets"
        # The time window the arrivals fill (a 10 s burst gets a seconds axis, not the run's).
        end = max((t + b for _, b, pts in rates for t, v in pts if v > 0), default=1.0)
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
        summary = hb.table(
            f"Arrivals summary{where}",
            (
                "line",
                "bucket",
                "peak per second in one bucket",
                "peak bucket starts at",
                "total arrivals",
                "last arrival",
            ),
            [
                [
                    g,
                    svg.fmt_duration(bucket),
                    svg.fmt_num(max(v for _, v in pts)),
                    svg.fmt_duration(max(pts, key=lambda p: (p[1], -p[0]))[0]),
                    svg.fmt_num(sum(v for _, v in raw)),
                    svg.fmt_duration(max((t for t, v in raw if v > 0), default=0.0)),
                ]
                for (g, pts), (_, raw), (_, bucket, _) in zip(named, counts, rates, strict=True)
            ],
            numeric=(1, 2, 3, 4, 5),
        )
        bt = an.bucket_table(named)
        table = hb.table(
            f"Arrivals per second over time{where}",
            bt.columns,
            bt.rows,
            numeric=range(1, len(bt.columns)),
        )
        yield hb.pair(chart, [summary, table], f"Arrivals per second at n8n{where}{per}.")
