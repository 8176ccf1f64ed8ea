"""Small, dependency-free inline SVG charts: lines and steps, histograms, bars, timelines, ranges.

Every chart carries `role="img"`, an `aria-label`, and `<title>`/`<desc>` elements, and draws
with colour *and* dash pattern or text so it reads in greyscale print. Output is a pure function
of the input: coordinates are rounded to one decimal, ids come from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

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


def _esc(text: object) -> str:
    return escape(clean(text), quote=True)


def _f(v: float) -> str:
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


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


def _open(chart_id: str, title: str, desc: str, height: int = _H) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" '
        f'viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" role="img" '
        f'aria-label="{_esc(title)}" aria-describedby="{chart_id}-desc">',
        f'<title id="{chart_id}-title">{_esc(title)}</title>',
        f'<desc id="{chart_id}-desc">{_esc(desc)}</desc>',
        f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>',
    ]


def _axes(
    fr: _Frame,
    x_label: str,
    y_label: str,
    *,
    x_time: bool,
    x_ticks: bool = True,
    y_fmt: str = "num",
) -> list[str]:
    out = ['<g class="axes" font-size="11" fill="#222" font-family="sans-serif">']
    y_ticks = (
        []
        if y_fmt == "none"
        else (time_ticks(fr.y0, fr.y1) if y_fmt == "time" else nice_ticks(fr.y0, fr.y1))
    )
    for t in y_ticks:
        y = fr.y(t)
        out.append(
            f'<line x1="{_f(fr.px0)}" y1="{_f(y)}" x2="{_f(fr.px1)}" y2="{_f(y)}" '
            'stroke="#ddd" stroke-width="1"/>'
        )
        label = fmt_duration(t, fr.y1 - fr.y0) if y_fmt == "time" else fmt_num(t)
        out.append(f'<text x="{_f(fr.px0 - 6)}" y="{_f(y + 4)}" text-anchor="end">{label}</text>')
    if x_ticks:
        for t in time_ticks(fr.x0, fr.x1) if x_time else nice_ticks(fr.x0, fr.x1):
            x = fr.x(t)
            out.append(
                f'<line x1="{_f(x)}" y1="{_f(fr.py0)}" x2="{_f(x)}" y2="{_f(fr.py0 + 4)}" '
                'stroke="#222" stroke-width="1"/>'
            )
            label = fmt_duration(t, fr.x1 - fr.x0) if x_time else fmt_num(t)
            out.append(
                f'<text x="{_f(x)}" y="{_f(fr.py0 + 16)}" text-anchor="middle">{label}</text>'
            )
    out.append(
        f'<line x1="{_f(fr.px0)}" y1="{_f(fr.py0)}" x2="{_f(fr.px1)}" y2="{_f(fr.py0)}" '
        'stroke="#222" stroke-width="1"/>'
    )
    out.append(
        f'<line x1="{_f(fr.px0)}" y1="{_f(fr.py0)}" x2="{_f(fr.px0)}" y2="{_f(fr.py1)}" '
        'stroke="#222" stroke-width="1"/>'
    )
    out.append(
        f'<text x="{_f((fr.px0 + fr.px1) / 2)}" y="{_f(fr.height - 6)}" '
        f'text-anchor="middle">{_esc(x_label)}</text>'
    )
    cy = (fr.py0 + fr.py1) / 2
    out.append(
        f'<text x="12" y="{_f(cy)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_f(cy)})">{_esc(y_label)}</text>'
    )
    out.append("</g>")
    return out


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


def _legend(items: Sequence[tuple[str, str, str]], y: float) -> list[str]:
    """(label, colour, dash) entries in rows under the plot, each as wide as its text."""
    out = ['<g class="legend" font-size="11" font-family="sans-serif" fill="#222">']
    places = _legend_rows([label for label, _, _ in items])
    for (label, colour, dash), (x, row) in zip(items, places, strict=True):
        yy = y + row * 14
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x}" y1="{_f(yy - 4)}" x2="{x + 22}" y2="{_f(yy - 4)}" '
            f'stroke="{colour}" stroke-width="3"{d}/>'
        )
        out.append(f'<text x="{x + 28}" y="{_f(yy)}">{_esc(label)}</text>')
    out.append("</g>")
    return out


def _legend_height(labels: Sequence[str]) -> int:
    if len(labels) <= 1:
        return 0
    return 8 + 14 * (1 + max(row for _, row in _legend_rows(labels)))


def _empty(chart_id: str, title: str, desc: str, message: str) -> str:
    out = _open(chart_id, title, desc, 60)
    out.append(
        f'<text x="{_W // 2}" y="34" text-anchor="middle" font-size="13" '
        f'font-family="sans-serif" fill="#444">{_esc(message)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


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
) -> str:
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
    extra = _legend_height([ln.label for ln in drawn])
    height = _H + extra
    fr = _Frame(min(0.0, min(xs)), x_hi, min(0.0, min(ys)), max(ys) * 1.15 or 1.0, height=_H)
    out = _open(chart_id, title, desc, height)
    out += _axes(fr, x_label, y_label, x_time=x_time, y_fmt=y_fmt)
    for m in markers:
        x = fr.x(m.x)
        out.append(
            f'<line class="marker" x1="{_f(x)}" y1="{_f(fr.py0)}" x2="{_f(x)}" '
            f'y2="{_f(fr.py1)}" stroke="#555" stroke-width="1" stroke-dasharray="3 3">'
            f"<title>{_esc(m.label)}</title></line>"
        )
    for i, ln in enumerate(drawn):
        pts = thin(ln.points)
        coords: list[str] = []
        prev_y: float | None = None
        for x, y in pts:
            px, py = fr.x(x), fr.y(y)
            if step and prev_y is not None:
                coords.append(f"{_f(px)},{_f(prev_y)}")
            coords.append(f"{_f(px)},{_f(py)}")
            prev_y = py
        if step and x_end is not None and prev_y is not None:
            coords.append(f"{_f(fr.x(x_end))},{_f(prev_y)}")
        colour, dash = PALETTE[i % len(PALETTE)], _DASHES[i % len(_DASHES)]
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2"{d} '
            f'points="{" ".join(coords)}"><title>{_esc(ln.label)}</title></polyline>'
        )
    if len(drawn) > 1:
        out += _legend(
            [
                (ln.label, PALETTE[i % len(PALETTE)], _DASHES[i % len(_DASHES)])
                for i, ln in enumerate(drawn)
            ],
            _H + 6,
        )
    out.append("</svg>")
    return "\n".join(out)


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
) -> str:
    """Bars over bins `edges[i]..edges[i+1]` with vertical bound markers drawn on top; `labels`
    name the bins in the bars' tooltips (default: their edges)."""
    if not counts or sum(counts) == 0 or len(edges) != len(counts) + 1:
        return _empty(chart_id, title, desc, "No data recorded.")
    fr = _Frame(edges[0], edges[-1], 0.0, max(counts) * 1.1)
    out = _open(chart_id, title, desc)
    out += _axes(fr, x_label, y_label, x_time=False)
    for i, c in enumerate(counts):
        if c == 0:
            continue
        x0, x1 = fr.x(edges[i]), fr.x(edges[i + 1])
        y = fr.y(c)
        out.append(
            f'<rect class="bar" x="{_f(x0 + 1)}" y="{_f(y)}" width="{_f(max(x1 - x0 - 2, 1))}" '
            f'height="{_f(fr.py0 - y)}" fill="{PALETTE[0]}">'
            f"<title>{_esc(labels[i]) if i < len(labels) else _bin(edges, i)}: {c}</title></rect>"
        )
    for b in bounds:
        x = fr.x(b.x)
        out.append(
            f'<line class="bound" x1="{_f(x)}" y1="{_f(fr.py0)}" x2="{_f(x)}" y2="{_f(fr.py1)}" '
            f'stroke="{PALETTE[1]}" stroke-width="2" stroke-dasharray="5 3"/>'
        )
        out.append(
            f'<text x="{_f(x + 3)}" y="{_f(fr.py1 + 10)}" font-size="11" '
            f'font-family="sans-serif" fill="{PALETTE[1]}">{_esc(b.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


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
) -> str:
    """Per category: the promised [low, high] as an outlined box, observed min..max as a bar."""
    if not items:
        return _empty(chart_id, title, desc, "No data recorded.")
    top = max(max(i.high, i.observed_max) for i in items)
    fr = _Frame(0.0, float(len(items)), 0.0, top * 1.08 or 1.0)
    out = _open(chart_id, title, desc, _H + 22)
    out += _axes(fr, x_label, y_label, x_time=False, x_ticks=False, y_fmt="time")
    slot = (fr.px1 - fr.px0) / len(items)
    for n, it in enumerate(items):
        cx = fr.px0 + slot * (n + 0.5)
        w = min(slot * 0.6, 40.0)
        y_hi, y_lo = fr.y(it.high), fr.y(it.low)
        out.append(
            f'<rect class="bounds" x="{_f(cx - w / 2)}" y="{_f(y_hi)}" width="{_f(w)}" '
            f'height="{_f(max(y_lo - y_hi, 1))}" fill="#eef4fa" stroke="{PALETTE[0]}" '
            f'stroke-width="1.5" stroke-dasharray="4 2"><title>attempt {_esc(it.label)}: '
            f"bounds {fmt_duration(it.low)} to {fmt_duration(it.high)}</title></rect>"
        )
        colour = PALETTE[1] if it.outside else "#222"
        o_hi, o_lo = fr.y(it.observed_max), fr.y(it.observed_min)
        out.append(
            f'<rect class="observed" x="{_f(cx - 3)}" y="{_f(o_hi)}" width="6" '
            f'height="{_f(max(o_lo - o_hi, 1.5))}" fill="{colour}"><title>attempt '
            f"{_esc(it.label)}: observed {fmt_duration(it.observed_min)} to "
            f"{fmt_duration(it.observed_max)}, {it.outside} outside</title></rect>"
        )
        out.append(
            f'<text x="{_f(cx)}" y="{_f(fr.py0 + 16)}" text-anchor="middle" font-size="11" '
            f'font-family="sans-serif" fill="#222">{_esc(it.label)}</text>'
        )
    out += [
        '<g class="legend" font-size="11" font-family="sans-serif" fill="#222">',
        f'<rect x="{_ML}" y="{_H + 4}" width="14" height="10" fill="#eef4fa" '
        f'stroke="{PALETTE[0]}" stroke-dasharray="4 2"/>',
        f'<text x="{_ML + 20}" y="{_H + 13}">promised bounds</text>',
        f'<rect x="{_ML + 140}" y="{_H + 4}" width="6" height="10" fill="#222"/>',
        f'<text x="{_ML + 152}" y="{_H + 13}">observed min to max</text>',
        "</g>",
        "</svg>",
    ]
    return "\n".join(out)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_label: str,
    y_fmt: str = "num",
) -> str:
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
    out = _open(chart_id, title, desc, height)
    out += _axes(fr, "", y_label, x_time=False, x_ticks=False, y_fmt=y_fmt)
    slot = (fr.px1 - fr.px0) / len(categories)
    bw = min(slot * 0.8 / max(len(series), 1), 48.0)
    for ci, cat in enumerate(categories):
        gx = fr.px0 + slot * ci + (slot - bw * len(series)) / 2
        for si, (name, vs) in enumerate(series):
            if ci >= len(vs):
                continue
            v = vs[ci]
            x = gx + si * bw
            if v is None:
                out.append(
                    f'<text x="{_f(x + bw / 2)}" y="{_f(fr.py0 - 3)}" text-anchor="middle" '
                    f'font-size="10" font-family="sans-serif" fill="#222">never'
                    f"<title>{_esc(cat)}, {_esc(name)}: never</title></text>"
                )
                continue
            y, y0 = fr.y(max(v, 0.0)), fr.y(min(v, 0.0))
            colour = PALETTE[si % len(PALETTE)]
            text = fmt_duration(v) if y_fmt == "time" else fmt_num(v)
            out.append(
                f'<rect class="bar" x="{_f(x + 1)}" y="{_f(y)}" width="{_f(bw - 2)}" '
                f'height="{_f(max(y0 - y, 0.5))}" fill="{colour}"><title>{_esc(cat)}, '
                f"{_esc(name)}: {text}</title></rect>"
            )
            out.append(
                f'<text x="{_f(x + bw / 2)}" y="{_f(y - 3)}" text-anchor="middle" '
                f'font-size="10" font-family="sans-serif" fill="#222">{text}</text>'
            )
        words = _wrap(cat, 14, label_rows)
        for li, w in enumerate(words):
            out.append(
                f'<text x="{_f(fr.px0 + slot * (ci + 0.5))}" y="{_f(fr.py0 + 14 + 13 * li)}" '
                f'text-anchor="middle" font-size="11" font-family="sans-serif" '
                f'fill="#222">{_esc(w)}</text>'
            )
    if len(series) > 1:
        out.append('<g class="legend" font-size="11" font-family="sans-serif" fill="#222">')
        for si, (name, _) in enumerate(series):
            col, row = si % 4, si // 4
            x = _ML + col * 140
            y = _H + 14 * (label_rows - 1) + 6 + row * 14
            out.append(
                f'<rect x="{x}" y="{y - 9}" width="12" height="10" '
                f'fill="{PALETTE[si % len(PALETTE)]}"/>'
            )
            out.append(f'<text x="{x + 18}" y="{y}">{_esc(name)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


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
) -> str:
    """One lane per label, each segment filled by its state (with the state named on hover)."""
    if not lanes:
        return _empty(chart_id, title, desc, "No state changes recorded.")
    lane_h = 18
    left = 110
    plot_h = lane_h * len(lanes) + 8
    height = _MT + plot_h + _MB + 20
    fr = _Frame(0.0, max(x_end, 1.0), 0.0, 1.0, height=_MT + plot_h + _MB, left=left)
    out = _open(chart_id, title, desc, height)
    out += _axes(fr, x_label, "", x_time=True, y_fmt="none")
    fills = {s: STATE_FILL.get(s, PALETTE[(i + 3) % len(PALETTE)]) for i, s in enumerate(states)}
    for li, lane in enumerate(lanes):
        y = _MT + 4 + li * lane_h
        out.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" font-size="11" '
            f'font-family="sans-serif" fill="#222">{_esc(_clip(lane.label, 16))}</text>'
        )
        for start, end, state in lane.segments:
            x0, x1 = fr.x(start), fr.x(end)
            pattern = ' stroke="#222" stroke-width="0.5"' if state == "open" else ""
            out.append(
                f'<rect class="state state-{_esc(state)}" x="{_f(x0)}" y="{y}" '
                f'width="{_f(max(x1 - x0, 0.8))}" height="{lane_h - 4}" '
                f'fill="{fills.get(state, "#999")}"{pattern}><title>{_esc(lane.label)}: '
                f"{_esc(state)} from {fmt_duration(start)} to {fmt_duration(end)}</title></rect>"
            )
    ly = height - 8
    out.append('<g class="legend" font-size="11" font-family="sans-serif" fill="#222">')
    for i, s in enumerate(states):
        x = left + i * 160
        outline = ' stroke="#222" stroke-width="0.5"' if s == "open" else ""
        out.append(
            f'<rect x="{x}" y="{ly - 9}" width="12" height="10" fill="{fills[s]}"{outline}/>'
        )
        out.append(f'<text x="{x + 18}" y="{ly}">{_esc(state_label(s))}</text>')
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
