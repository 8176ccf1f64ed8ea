"""The HTML sections built from tables of numbers: a scenario's comparison and a load run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from harness.report import analysis as an
from harness.report import html_blocks as hb
from harness.report import html_study, svg
from harness.report.model import Comparison, LoadResults, Scenario

__all__ = ["comparison", "load"]


def comparison(s: Scenario, c: Comparison, ids: hb.Ids) -> Iterator[hb.Block]:
    if c.kind == "aws-occ":
        yield from html_study.occ_section(s, c, ids)
        return
    title = {
        "herd": "Herd comparison: jitter strategies against an n8n that recovers",
        "replay": "Replay comparison: the Step 06 last-event-id ledger versus the fixed design",
        "dedupe": "Dedupe comparison: duplicates sent versus duplicate effects, with and "
        "without n8n's Remove Duplicates node",
    }.get(c.kind, f"Comparison: {c.kind}")
    yield hb.Heading(3, title)
    nums = an.numeric_columns(c)
    table = hb.table(
        f"{c.kind} comparison in {s.name}: variants (rows) by measure (columns)",
        [an.words(col) for col in c.columns],
        [[_cell(c, i, x) for i, x in enumerate(row)] for row in c.rows],
        numeric=nums,
    )
    labels = [an.row_label(c, r) for r in c.rows]
    keys = [i for i in range(len(c.columns)) if i not in nums]
    charts: list[svg.Chart] = []
    for i in nums:
        col = an.words(c.columns[i])
        vals = [_as_float(r[i]) for r in c.rows]
        if len(keys) == 2:
            # Two label columns (strategy x budget): groups of bars, one bar per second key.
            cats = list(dict.fromkeys(_key_text(c, keys[0], r) for r in c.rows))
            subs = list(dict.fromkeys(_key_text(c, keys[1], r) for r in c.rows))
            cell = {
                (_key_text(c, keys[0], r), _key_text(c, keys[1], r)): _as_float(r[i])
                for r in c.rows
            }
            series = [(sub, [cell.get((cat, sub)) for cat in cats]) for sub in subs]
        else:
            cats, series = labels, [(col, vals)]
        charts.append(
            svg.bar_chart(
                chart_id=ids.chart(),
                title=f"{col} per {c.kind} variant in {s.name}",
                desc=f"{col}: "
                + ", ".join(
                    f"{lb} {an.fmt_value(c.columns[i], v)}"
                    for lb, v in zip(labels, vals, strict=True)
                )
                + ".",
                categories=cats,
                series=series,
                y_label=col,
                y_fmt="time" if an.is_time(c.columns[i]) else "num",
            )
        )
    if not charts:
        yield table
        return
    yield hb.pair(charts[0], table, _capital(f"{an.words(c.columns[nums[0]])} per variant."))
    for ch, i in zip(charts[1:], nums[1:], strict=True):
        col = an.words(c.columns[i])
        small = hb.table(
            _capital(f"{col} per variant"),
            ("variant", col),
            [[lb, _cell(c, i, r[i])] for lb, r in zip(labels, c.rows, strict=True)],
            numeric=(1,),
        )
        yield hb.pair(ch, small, _capital(f"{col} per variant."))


def _capital(text: str) -> str:
    """A caption starts with a capital, like every other sentence on the page."""
    return text[:1].upper() + text[1:]


def _as_float(v: object) -> float | None:
    """A numeric cell as a float; None (never) stays None."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _cell(c: Comparison, i: int, v: object) -> str:
    """A comparison cell in words: durations for time columns, "never" for a null time."""
    number = _as_float(v)
    if number is not None or (v is None and an.is_time(c.columns[i])):
        return an.fmt_value(c.columns[i], number)
    return hb.fmt_cell(v)


def _key_text(c: Comparison, i: int, row: Sequence[object]) -> str:
    v = row[i]
    if isinstance(v, bool):
        return f"{an.humanize(c.columns[i])} {'on' if v else 'off'}"
    return "" if v is None else str(v)


def load(lr: LoadResults, n: int, ids: hb.Ids, slug: str) -> hb.Section:
    suffix = f" {n}" if n else ""
    heading = (f"Load test{suffix} ", hb.Mark(lr.passed, "passed", "failed"))
    return hb.Section(slug, heading, list(_load_blocks(lr, ids)), "load")


def _load_blocks(lr: LoadResults, ids: hb.Ids) -> Iterator[hb.Block]:
    if lr.command:
        yield hb.Para(("Reproduce with ", hb.Code(lr.command)))
    if lr.config:
        yield hb.table(
            "Load configuration",
            ("setting", "value"),
            [[an.words(k), an.setting_words(v)] for k, v in lr.config.items()],
        )
    if lr.threshold_results:
        yield hb.table(
            "Thresholds",
            ("threshold", "verdict", "limit", "measured"),
            [
                [
                    t.name,
                    (hb.Mark(t.passed, "met", "missed"),),
                    svg.fmt_num(t.limit),
                    svg.fmt_num(t.value),
                ]
                for t in lr.threshold_results
            ],
            numeric=(2, 3),
        )
    if lr.invariants:
        yield from hb.invariants_table(lr.invariants, "Load-test invariants")
    yield from _load_stats(lr, ids)
    yield from _load_history(lr, ids)


def _load_stats(lr: LoadResults, ids: hb.Ids) -> Iterator[hb.Block]:
    """Latency percentiles per endpoint: a bar chart beside the request table."""
    if lr.stats:
        yield hb.Heading(3, "Latency percentiles per endpoint")
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
        table = hb.table(
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
        yield hb.pair(chart, table, "Latency percentiles per endpoint.")


def _load_history(lr: LoadResults, ids: hb.Ids) -> Iterator[hb.Block]:
    """Latency, throughput and users over the run."""
    if lr.history:
        hist = sorted(lr.history, key=lambda p: p.t)
        yield hb.Heading(3, "Latency and throughput over time")
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
        # Requests per second and users are different units: one chart (one axis) each.
        rps = [("requests/s", [(p.t, p.rps) for p in hist if p.rps is not None])]
        yield _over_time(
            ids,
            rps,
            title="Throughput over the load run",
            desc="Requests per second over the run. Highest: "
            f"{svg.fmt_num(max((v for _, v in rps[0][1]), default=None))} requests/s.",
            y_label="requests per second",
            name="Throughput over time",
        )
        users = [("users", [(p.t, float(p.users)) for p in hist])]
        yield _over_time(
            ids,
            users,
            title="Simulated users over the load run",
            desc="Simulated users over the run. Most: "
            f"{svg.fmt_num(max((v for _, v in users[0][1]), default=None))}.",
            y_label="users",
            name="Users over time",
        )


def _over_time(
    ids: hb.Ids,
    series: list[tuple[str, list[tuple[float, float]]]],
    *,
    title: str,
    desc: str,
    y_label: str,
    name: str,
) -> hb.Figure:
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
    table = hb.table(name, bt.columns, bt.rows, numeric=range(1, len(bt.columns)))
    return hb.pair(chart, table, f"{name}.")
