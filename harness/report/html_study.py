"""The HTML section of the aws-occ scenario: the published experiment's two charts, reproduced.

Work (calls) and time until every client succeeded, each against the number of clients, one
line per strategy, as in the AWS Architecture Blog's "Exponential Backoff And Jitter"; each chart
beside its table (client counts as rows, strategies as columns) and under the verdict that
compares the same numbers with the published shape, claim by claim.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
    if not c.checks:
        yield hb.Para((hb.Strong("Verdict"), " ", mark, f": {c.verdict}"))
    else:
        held = sum(1 for k in c.checks if k.held)
        words = f"{held} of {len(c.checks)} claims of the published shape hold, on the numbers"
        yield hb.Para(
            (hb.Strong("Verdict"), " ", mark, f": {words} summed over every client count.")
        )
        yield hb.table(
            "The published shape, claim by claim",
            ("claim", "verdict", "numbers"),
            [[k.claim, (hb.Mark(k.held, "holds", "DOES NOT HOLD"),), k.numbers] for k in c.checks],
        )
    for measure, what, y_fmt in (
        ("calls", "Work: calls to the item (mean per run)", "num"),
        ("completion_s", "Time until every client succeeded (mean per run)", "time"),
    ):
        lines = occ_series(c, measure)
        counts = sorted({x for pts in lines.values() for x, _ in pts})
        chart = svg.line_chart(
            chart_id=ids.chart(),
            title=f"{what} against the number of clients, per strategy",
            desc=f"{what}, one line per backoff strategy, at {_span(counts)} clients.",
            lines=[svg.Line(name, pts) for name, pts in lines.items()],
            x_label="clients",
            y_label="calls" if measure == "calls" else "time",
            y_fmt=y_fmt,
        )
        # Client counts as rows (the post's simulator has up to 19), strategies as columns.
        at = {name: dict(pts) for name, pts in lines.items()}
        unit = "calls" if measure == "calls" else "s"
        rows = [
            [
                svg.fmt_num(n),
                *("" if n not in at[name] else _value(at[name][n], y_fmt) for name in lines),
            ]
            for n in counts
        ]
        table = hb.table(
            f"{what}: client counts (rows) by strategy (columns)",
            ("clients", *(f"{name} ({unit})" for name in lines)),
            rows,
            numeric=range(1, len(lines) + 1),
        )
        yield hb.pair(chart, table, f"{what}, one line per strategy; the table holds its numbers.")


def _value(v: float, y_fmt: str) -> str:
    return svg.fmt_num(round(v, 1)) if y_fmt == "num" else f"{v:.3f}"


def _span(counts: Sequence[float]) -> str:
    """`10 to 190` for a run of more than three counts, else the counts themselves."""
    if len(counts) > 3:
        return f"{len(counts)} counts from {svg.fmt_num(counts[0])} to {svg.fmt_num(counts[-1])}"
    return ", ".join(svg.fmt_num(n) for n in counts)
