"""Numbers, durations and axis scales for the report: short labels, round ticks, time units.

Pure functions shared by the charts (svg.py), the tables (html and Markdown) and the findings;
every rendering is deterministic so two reports of the same results are byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

__all__ = [
    "clean",
    "fmt_duration",
    "fmt_num",
    "nice_step",
    "nice_ticks",
    "thin",
    "time_step",
    "time_ticks",
]


def fmt_num(v: float | None) -> str:
    """A short, deterministic rendering of a number for labels and tables ("n/a" for None)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) < 1e15):
        return f"{int(v):,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _time_unit(ref: float) -> tuple[float, str]:
    ref = abs(ref)
    if ref >= 2 * 86400:
        return 86400.0, "d"
    if ref >= 2 * 3600:
        return 3600.0, "h"
    if ref >= 120:
        return 60.0, "min"
    return 1.0, "s"


def fmt_duration(seconds: float, span: float | None = None) -> str:
    """Seconds as s/min/h/d, the unit chosen by `span` (default: the value itself)."""
    size, unit = _time_unit(span if span is not None else seconds)
    return f"{fmt_num(seconds / size)} {unit}"


def nice_step(raw: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k not below `raw` (> 0)."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag: float = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-12))


def time_step(span: float, count: int) -> float:
    """A round bucket width (seconds) giving at most about `count` buckets over `span`."""
    size, _ = _time_unit(span)
    return nice_step(span / size / max(count, 1)) * size


def time_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Tick values (in seconds) that are round in the unit the span is shown in."""
    size, _ = _time_unit(hi - lo)
    return [t * size for t in nice_ticks(lo / size, hi / size, count)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi], about `count` of them (at least one)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    for shrink in (1.0, 2.0, 4.0, 10.0):
        step = nice_step(raw / shrink)
        start = math.ceil(lo / step - 1e-9) * step
        ticks: list[float] = []
        v = start
        for _ in range(count * 12 + 1):
            if v > hi + step * 1e-9:
                break
            ticks.append(round(v, 10))
            v += step
        if ticks:
            return ticks
    return [lo]


def thin(points: Sequence[tuple[float, float]], limit: int = 600) -> list[tuple[float, float]]:
    """At most ~`limit` points, keeping each bucket's minimum and maximum (peaks survive)."""
    if len(points) <= limit:
        return list(points)
    buckets = max(limit // 2, 1)
    size = math.ceil(len(points) / buckets)
    out: list[tuple[float, float]] = []
    for start in range(0, len(points), size):
        chunk = points[start : start + size]
        lo = min(range(len(chunk)), key=lambda i: chunk[i][1])
        hi = max(range(len(chunk)), key=lambda i: chunk[i][1])
        for i in sorted({lo, hi}):
            out.append(chunk[i])
    return out


_CONTROL: Final = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF], None
)


def clean(text: object) -> str:
    """Text safe in XML and HTML: control characters dropped, line breaks and tabs as spaces."""
    s = str(text).translate(_CONTROL)
    s = s.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return s.encode("utf-8", "replace").decode("utf-8")
