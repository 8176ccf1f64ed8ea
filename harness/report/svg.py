"""Inline SVG charts: lines and steps, histograms, bars, timelines, ranges, as computed geometry.

Each function places its marks (scales, ticks, legend rows: pure arithmetic) and returns a
`Chart` of `marks` records; templates/chart.svg.j2 draws them, escaping every text. Every chart
carries `role="img"`, an `aria-label`, and `<title>`/`<desc>` elements, and draws with colour
*and* dash pattern or text so it reads in greyscale print. Output is a pure function of the
input: coordinates are rounded to one decimal, ids come from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from harness.report.marks import Chart, Group, Mark, Poly, Rect, Seg, Text
from harness.report.scales import (
    clean,
    fmt_duration,
    fmt_num,
    nice_step,
    nice_ticks,
    thin,
    time_step,
    time_ticks,
)

__all__ = [
    "PALETTE",
    "Bound",
    "Chart",
    "Lane",
    "Line",
    "RangeItem",
    "bar_chart",
    "clean",
    "fmt_duration",
    "fmt_num",
    "histogram",
    "line_chart",
    "merge_identical",
    "nice_step",
    "nice_ticks",
    "range_chart",
    "state_key",
    "state_label",
    "thin",
    "time_step",
    "time_ticks",
    "timeline_chart",
]

PALETTE: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
"""Okabe-Ito: distinguishable with the common colour-vision deficiencies."""
_DASHES: Final = ("", "6 3", "2 2", "8 3 2 3", "1 3", "10 4", "4 4")
STATE_FILL: Final = {
    "closed": "#009E73",
    "half_open": "#E69F00",
    "open": "#D55E00",
}
_STATE_COLOUR: Final = {"closed": "green", "half_open": "orange", "open": "red-orange, outlined"}
"""How the legend and every caption name each state's fill (the same words in both)."""


def state_label(state: str) -> str:
    """A breaker state as the legend shows it: `half-open (orange)`."""
    colour = _STATE_COLOUR.get(state)
    words = state.replace("_", "-")
    return f"{words} ({colour})" if colour else words


def state_key(states: Sequence[str]) -> str:
    """The legend in a sentence, for a caption: `closed (green), open (red-orange, outlined)`."""
    return ", ".join(state_label(s) for s in states)


_BOUNDS_FILL: Final = "#eef4fa"
_W: Final = 640
_H: Final = 260
_ML: Final = 60
_MR: Final = 16
_MT: Final = 14
_MB: Final = 42


@dataclass(frozen=True, slots=True)
class Line:
    """One labelled line of (x, y) points, x ascending."""

    label: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Bound:
    """A vertical marker at `x` (a bound, an expiry, a purge) with a short label."""

    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Lane:
    """One row of a state timeline: `(start, end, state)` segments."""

    label: str
    segments: Sequence[tuple[float, float, str]]


@dataclass(frozen=True, slots=True)
class RangeItem:
    """For one category (a retry attempt): the promised bounds and the observed range."""

    label: str
    low: float
    high: float
    observed_min: float
    observed_max: float
    outside: int


class _Frame:
    """The plot area and the linear scales from data to pixels."""

    def __init__(
        self, x0: float, x1: float, y0: float, y1: float, *, height: int = _H, left: int = _ML
    ) -> None:
        if x1 <= x0:
            x1 = x0 + 1
        if y1 <= y0:
            y1 = y0 + 1
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.left = left
        self.height = height
        self.px0, self.px1 = float(left), float(_W - _MR)
        self.py0, self.py1 = float(height - _MB), float(_MT)

    def x(self, v: float) -> float:
        return self.px0 + (v - self.x0) / (self.x1 - self.x0) * (self.px1 - self.px0)

    def y(self, v: float) -> float:
        return self.py0 + (v - self.y0) / (self.y1 - self.y0) * (self.py1 - self.py0)


def _chart(chart_id: str, title: str, desc: str, marks: Sequence[Mark], height: int = _H) -> Chart:
    return Chart(chart_id, title, desc, _W, height, tuple(marks))


def _axes(
    fr: _Frame,
    x_label: str,
    y_label: str,
    *,
    x_time: bool,
    x_ticks: bool = True,
    y_fmt: str = "num",
) -> Group:
    marks: list[Mark] = []
    y_ticks = (
        []
        if y_fmt == "none"
        else (time_ticks(fr.y0, fr.y1) if y_fmt == "time" else nice_ticks(fr.y0, fr.y1))
    )
    for t in y_ticks:
        y = fr.y(t)
        label = fmt_duration(t, fr.y1 - fr.y0) if y_fmt == "time" else fmt_num(t)
        marks.append(Seg(fr.px0, y, fr.px1, y, "#ddd"))
        marks.append(Text(fr.px0 - 6, y + 4, label, anchor="end"))
    if x_ticks:
        for t in time_ticks(fr.x0, fr.x1) if x_time else nice_ticks(fr.x0, fr.x1):
            x = fr.x(t)
            label = fmt_duration(t, fr.x1 - fr.x0) if x_time else fmt_num(t)
            marks.append(Seg(x, fr.py0, x, fr.py0 + 4, "#222"))
            marks.append(Text(x, fr.py0 + 16, label, anchor="middle"))
    cy = (fr.py0 + fr.py1) / 2
    marks += [
        Seg(fr.px0, fr.py0, fr.px1, fr.py0, "#222"),
        Seg(fr.px0, fr.py0, fr.px0, fr.py1, "#222"),
        Text((fr.px0 + fr.px1) / 2, fr.height - 6.0, x_label, anchor="middle"),
        Text(12, cy, y_label, anchor="middle", rotate=True),
    ]
    return Group("axes", marks)


def _legend_rows(labels: Sequence[str]) -> list[tuple[int, int]]:
    """(x, row) of each legend entry: entries as wide as their text, wrapped to the width."""
    out: list[tuple[int, int]] = []
    x, row = _ML, 0
    for label in labels:
        width = 40 + int(6.2 * len(label))
        if x > _ML and x + width > _W - _MR:
            x, row = _ML, row + 1
        out.append((x, row))
        x += max(width, 140)
    return out


def _legend(items: Sequence[tuple[str, str, str]], y: float) -> Group:
    """(label, colour, dash) entries in rows under the plot, each as wide as its text."""
    marks: list[Mark] = []
    places = _legend_rows([label for label, _, _ in items])
    for (label, colour, dash), (x, row) in zip(items, places, strict=True):
        yy = float(y + row * 14)
        marks.append(Seg(x, yy - 4, x + 22, yy - 4, colour, "3", dash))
        marks.append(Text(x + 28, yy, label))
    return Group("legend", marks)


def _legend_height(labels: Sequence[str]) -> int:
    if len(labels) <= 1:
        return 0
    return 8 + 14 * (1 + max(row for _, row in _legend_rows(labels)))


def _empty(chart_id: str, title: str, desc: str, message: str) -> Chart:
    text = Text(_W // 2, 34, message, anchor="middle", size="13", family="sans-serif", fill="#444")
    return _chart(chart_id, title, desc, [text], 60)


def _style(i: int) -> tuple[str, str]:
    """The colour and dash pattern of series number `i` (the legend and the lines agree)."""
    return PALETTE[i % len(PALETTE)], _DASHES[i % len(_DASHES)]


def line_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    lines: Sequence[Line],
    x_label: str,
    y_label: str,
    step: bool = False,
    markers: Sequence[Bound] = (),
    x_time: bool = False,
    x_end: float | None = None,
    y_fmt: str = "num",
) -> Chart:
    """Lines (or step lines, holding each value until the next point) over x, with markers.

    Lines with exactly the same points are drawn once, labelled `a = b` (one would hide the
    other); the y axis leaves headroom so the highest line never sits on the frame's edge.
    """
    drawn = merge_identical([ln for ln in lines if ln.points])
    if not drawn:
        return _empty(chart_id, title, desc, "No data recorded.")
    xs = [p[0] for ln in drawn for p in ln.points] + [m.x for m in markers]
    ys = [p[1] for ln in drawn for p in ln.points]
    x_hi = max([*xs, x_end if x_end is not None else max(xs)])
    height = _H + _legend_height([ln.label for ln in drawn])
    fr = _Frame(min(0.0, min(xs)), x_hi, min(0.0, min(ys)), max(ys) * 1.15 or 1.0, height=_H)
    marks: list[Mark] = [_axes(fr, x_label, y_label, x_time=x_time, y_fmt=y_fmt)]
    for m in markers:
        x = fr.x(m.x)
        marks.append(Seg(x, fr.py0, x, fr.py1, "#555", "1", "3 3", "marker", m.label))
    for i, ln in enumerate(drawn):
        coords: list[tuple[float, float]] = []
        prev_y: float | None = None
        for x, y in thin(ln.points):
            px, py = fr.x(x), fr.y(y)
            if step and prev_y is not None:
                coords.append((px, prev_y))
            coords.append((px, py))
            prev_y = py
        if step and x_end is not None and prev_y is not None:
            coords.append((fr.x(x_end), prev_y))
        colour, dash = _style(i)
        marks.append(Poly(coords, colour, dash, ln.label))
    if len(drawn) > 1:
        marks.append(_legend([(ln.label, *_style(i)) for i, ln in enumerate(drawn)], _H + 6))
    return _chart(chart_id, title, desc, marks, height)


def merge_identical(lines: Sequence[Line]) -> list[Line]:
    """Lines with the same points as one line labelled with every name (`a = b = c`)."""
    groups: dict[tuple[tuple[float, float], ...], list[str]] = {}
    for ln in lines:
        groups.setdefault(tuple(ln.points), []).append(ln.label)
    return [Line(" = ".join(names), list(pts)) for pts, names in groups.items()]


def histogram(
    *,
    chart_id: str,
    title: str,
    desc: str,
    edges: Sequence[float],
    counts: Sequence[int],
    bounds: Sequence[Bound],
    x_label: str,
    y_label: str = "retries",
    labels: Sequence[str] = (),
) -> Chart:
    """Bars over bins `edges[i]..edges[i+1]` with vertical bound markers drawn on top; `labels`
    name the bins in the bars' tooltips (default: their edges)."""
    if not counts or sum(counts) == 0 or len(edges) != len(counts) + 1:
        return _empty(chart_id, title, desc, "No data recorded.")
    fr = _Frame(edges[0], edges[-1], 0.0, max(counts) * 1.1)
    marks: list[Mark] = [_axes(fr, x_label, y_label, x_time=False)]
    for i, c in enumerate(counts):
        if c == 0:
            continue
        x0, x1 = fr.x(edges[i]), fr.x(edges[i + 1])
        y = fr.y(c)
        name = labels[i] if i < len(labels) else _bin(edges, i)
        marks.append(
            Rect(
                x0 + 1, y, max(x1 - x0 - 2, 1.0), fr.py0 - y, PALETTE[0], "bar", tip=f"{name}: {c}"
            )
        )
    for b in bounds:
        x = fr.x(b.x)
        marks.append(Seg(x, fr.py0, x, fr.py1, PALETTE[1], "2", "5 3", "bound"))
        marks.append(
            Text(x + 3, fr.py1 + 10, b.label, size="11", family="sans-serif", fill=PALETTE[1])
        )
    return _chart(chart_id, title, desc, marks)


def _bin(edges: Sequence[float], i: int) -> str:
    return f"{fmt_num(edges[i])} to {fmt_num(edges[i + 1])}"


def range_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    items: Sequence[RangeItem],
    x_label: str,
    y_label: str,
) -> Chart:
    """Per category: the promised [low, high] as an outlined box, observed min..max as a bar."""
    if not items:
        return _empty(chart_id, title, desc, "No data recorded.")
    top = max(max(i.high, i.observed_max) for i in items)
    fr = _Frame(0.0, float(len(items)), 0.0, top * 1.08 or 1.0)
    marks: list[Mark] = [_axes(fr, x_label, y_label, x_time=False, x_ticks=False, y_fmt="time")]
    slot = (fr.px1 - fr.px0) / len(items)
    for n, it in enumerate(items):
        cx = fr.px0 + slot * (n + 0.5)
        w = min(slot * 0.6, 40.0)
        y_hi, y_lo = fr.y(it.high), fr.y(it.low)
        o_hi, o_lo = fr.y(it.observed_max), fr.y(it.observed_min)
        marks += [
            Rect(
                cx - w / 2,
                y_hi,
                w,
                max(y_lo - y_hi, 1.0),
                _BOUNDS_FILL,
                "bounds",
                PALETTE[0],
                "1.5",
                "4 2",
                f"attempt {it.label}: bounds {fmt_duration(it.low)} to {fmt_duration(it.high)}",
            ),
            Rect(
                cx - 3,
                o_hi,
                6,
                max(o_lo - o_hi, 1.5),
                PALETTE[1] if it.outside else "#222",
                "observed",
                tip=f"attempt {it.label}: observed {fmt_duration(it.observed_min)} to "
                f"{fmt_duration(it.observed_max)}, {it.outside} outside",
            ),
            Text(cx, fr.py0 + 16, it.label, "middle", "11", "sans-serif", "#222"),
        ]
    legend: list[Mark] = [
        Rect(_ML, _H + 4, 14, 10, _BOUNDS_FILL, stroke=PALETTE[0], dash="4 2"),
        Text(_ML + 20, _H + 13, "promised bounds"),
        Rect(_ML + 140, _H + 4, 6, 10, "#222"),
        Text(_ML + 152, _H + 13, "observed min to max"),
    ]
    return _chart(chart_id, title, desc, [*marks, Group("legend", legend)], _H + 22)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_label: str,
    y_fmt: str = "num",
) -> Chart:
    """Grouped vertical bars: one group per category, one bar per series, values labelled.

    A None value (a time that never came) draws no bar, only the word "never" on the axis.
    """
    values = [v for _, vs in series for v in vs if v is not None]
    if not categories or not values:
        return _empty(chart_id, title, desc, "No data recorded.")
    extra = _legend_height([name for name, _ in series])
    label_rows = 2 if any(len(c) > 14 for c in categories) else 1
    height = _H + extra + 14 * (label_rows - 1)
    fr = _Frame(0.0, float(len(categories)), min(0.0, min(values)), max(values) * 1.12 or 1.0)
    marks: list[Mark] = [_axes(fr, "", y_label, x_time=False, x_ticks=False, y_fmt=y_fmt)]
    slot = (fr.px1 - fr.px0) / len(categories)
    bw = min(slot * 0.8 / max(len(series), 1), 48.0)
    for ci, cat in enumerate(categories):
        gx = fr.px0 + slot * ci + (slot - bw * len(series)) / 2
        for si, (name, vs) in enumerate(series):
            if ci < len(vs):
                marks += _bar(
                    fr,
                    gx + si * bw,
                    bw,
                    vs[ci],
                    PALETTE[si % len(PALETTE)],
                    f"{cat}, {name}",
                    y_fmt,
                )
        for li, w in enumerate(_wrap(cat, 14, label_rows)):
            marks.append(
                Text(
                    fr.px0 + slot * (ci + 0.5),
                    fr.py0 + 14 + 13 * li,
                    w,
                    "middle",
                    "11",
                    "sans-serif",
                    "#222",
                )
            )
    if len(series) > 1:
        legend: list[Mark] = []
        for si, (name, _) in enumerate(series):
            x = _ML + (si % 4) * 140
            y = _H + 14 * (label_rows - 1) + 6 + (si // 4) * 14
            legend += [Rect(x, y - 9, 12, 10, PALETTE[si % len(PALETTE)]), Text(x + 18, y, name)]
        marks.append(Group("legend", legend))
    return _chart(chart_id, title, desc, marks, height)


def _bar(
    fr: _Frame, x: float, bw: float, v: float | None, colour: str, what: str, y_fmt: str
) -> list[Mark]:
    """One bar with its value above it; a None value is the word "never" on the axis."""
    if v is None:
        return [
            Text(
                x + bw / 2,
                fr.py0 - 3,
                "never",
                "middle",
                "10",
                "sans-serif",
                "#222",
                tip=f"{what}: never",
            )
        ]
    y, y0 = fr.y(max(v, 0.0)), fr.y(min(v, 0.0))
    text = fmt_duration(v) if y_fmt == "time" else fmt_num(v)
    return [
        Rect(x + 1, y, bw - 2, max(y0 - y, 0.5), colour, "bar", tip=f"{what}: {text}"),
        Text(x + bw / 2, y - 3, text, "middle", "10", "sans-serif", "#222"),
    ]


def _wrap(text: str, width: int, rows: int) -> list[str]:
    if len(text) <= width or rows == 1:
        return [text if len(text) <= width * 2 else text[: width * 2 - 1] + "…"]
    words, lines, cur = text.split(), [], ""
    for w in words:
        cand = f"{cur} {w}".strip()
        if len(cand) > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = cand
    lines.append(cur)
    if len(lines) > rows:
        lines = [*lines[: rows - 1], " ".join(lines[rows - 1 :])]
    return [ln if len(ln) <= width + 4 else ln[: width + 3] + "…" for ln in lines]


def timeline_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    lanes: Sequence[Lane],
    x_end: float,
    x_label: str,
    states: Sequence[str],
) -> Chart:
    """One lane per label, each segment filled by its state (with the state named on hover)."""
    if not lanes:
        return _empty(chart_id, title, desc, "No state changes recorded.")
    lane_h = 18
    left = 110
    plot_h = lane_h * len(lanes) + 8
    height = _MT + plot_h + _MB + 20
    fr = _Frame(0.0, max(x_end, 1.0), 0.0, 1.0, height=_MT + plot_h + _MB, left=left)
    marks: list[Mark] = [_axes(fr, x_label, "", x_time=True, y_fmt="none")]
    fills = {s: STATE_FILL.get(s, PALETTE[(i + 3) % len(PALETTE)]) for i, s in enumerate(states)}
    for li, lane in enumerate(lanes):
        y = _MT + 4 + li * lane_h
        marks.append(
            Text(left - 6, y + 12, _clip(lane.label, 16), "end", "11", "sans-serif", "#222")
        )
        for start, end, state in lane.segments:
            x0, x1 = fr.x(start), fr.x(end)
            outline = ("#222", "0.5") if state == "open" else ("", "")
            marks.append(
                Rect(
                    x0,
                    y,
                    max(x1 - x0, 0.8),
                    lane_h - 4,
                    fills.get(state, "#999"),
                    f"state state-{state}",
                    *outline,
                    tip=f"{lane.label}: {state} from {fmt_duration(start)} to {fmt_duration(end)}",
                )
            )
    ly = height - 8
    legend: list[Mark] = []
    for i, s in enumerate(states):
        x = left + i * 160
        outline = ("#222", "0.5") if s == "open" else ("", "")
        legend += [
            Rect(x, ly - 9, 12, 10, fills[s], "", *outline),
            Text(x + 18, ly, state_label(s)),
        ]
    marks.append(Group("legend", legend))
    return _chart(chart_id, title, desc, marks, height)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
