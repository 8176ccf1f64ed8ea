"""The HTML section of the aws-occ scenario: the published experiment's two charts, reproduced.

Work (calls) and time until every client succeeded, each against the number of clients, one
line per strategy, as in the AWS Architecture Blog's "Exponential Backoff And Jitter"; each chart
beside its table (strategies as rows, client counts as columns) and under the verdict that
compares the same numbers with the published shape.
"""

from __future__ import annotations

from collections.abc import Iterator

from harness.report import analysis as an
from harness.report import html_blocks as hb
from harness.report import svg
from harness.report.model import Comparison, Scenario

__all__ = ["occ_section", "occ_series"]


def occ_series(c: Comparison, measure: str) -> dict[str, list[tuple[float, float]]]:
    """Per strategy (known ones first), `measure` ("calls" or "completion_s") by client count."""
    col = {name: i for i, name in enumerate(c.columns)}
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in c.rows:
        strategy, clients, value = row[col["strategy"]], row[col["clients"]], row[col[measure]]
        if isinstance(clients, int | float) and isinstance(value, int | float):
            lines.setdefault(str(strategy), []).append((float(clients), float(value)))
    return {k: sorted(lines[k]) for k in sorted(lines, key=an.strategy_key)}


def occ_section(s: Scenario, c: Comparison, ids: hb.Ids) -> Iterator[hb.Block]:
    yield hb.Heading(3, "The AWS jitter experiment, reproduced: work and time against clients")
    mark = hb.Mark(c.matches_study is True, "reproduces the published shape", "diverges")
    yield hb.Para((hb.Strong("Verdict"), " ", mark, f": {c.verdict}"))
    for measure, what, y_fmt in (
        ("calls", "Work: calls to the item (mean per run)", "num"),
        ("completion_s", "Time until every client succeeded (mean per run)", "time"),
    ):
        lines = occ_series(c, measure)
        counts = sorted({x for pts in lines.values() for x, _ in pts})
        chart = svg.line_chart(
            chart_id=ids.chart(),
            title=f"{what} against the number of clients, per strategy",
            desc=f"{what}, one line per backoff strategy, at "
            + ", ".join(svg.fmt_num(n) for n in counts)
            + " clients.",
            lines=[svg.Line(name, pts) for name, pts in lines.items()],
            x_label="clients",
            y_label="calls" if measure == "calls" else "time",
            y_fmt=y_fmt,
        )
        rows = []
        for name, pts in lines.items():
            at = dict(pts)
            cells = [
                "" if n not in at else svg.fmt_num(at[n]) if y_fmt == "num" else f"{at[n]:.3f} s"
                for n in counts
            ]
            rows.append([name, *cells])
        table = hb.table(
            f"{what}, strategies by client count",
            ("strategy", *(f"{svg.fmt_num(n)} clients" for n in counts)),
            rows,
            numeric=range(1, len(counts) + 1),
        )
        yield hb.pair(chart, table, f"{what}; the lines are the table beside the chart.")
