"""What a chart is made of: computed geometry as plain records, drawn by templates/chart.svg.j2.

svg.py computes where everything goes (scales, ticks, legend rows) and returns a `Chart` of these
marks; the template turns each mark into its SVG element, escaping every text. Nothing here
builds markup. A `Chart` renders itself (`str(chart)`, or inside a template as markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from markupsafe import Markup

__all__ = ["Chart", "Group", "Mark", "Poly", "Rect", "Seg", "Text"]


@dataclass(frozen=True, slots=True)
class Rect:
    """A filled box (a bar, a state segment, a bounds box, a legend swatch)."""

    kind: ClassVar[str] = "rect"
    x: float
    y: float
    width: float
    height: float
    fill: str
    cls: str = ""
    stroke: str = ""
    stroke_width: str = ""
    dash: str = ""
    tip: str = ""


@dataclass(frozen=True, slots=True)
class Text:
    """A label; unset style attributes inherit from the enclosing group."""

    kind: ClassVar[str] = "text"
    x: float
    y: float
    text: str
    anchor: str = ""
    size: str = ""
    family: str = ""
    fill: str = ""
    rotate: bool = False
    tip: str = ""


@dataclass(frozen=True, slots=True)
class Seg:
    """A straight line: an axis, a grid line, a tick, a marker, a legend sample."""

    kind: ClassVar[str] = "seg"
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str
    width: str = "1"
    dash: str = ""
    cls: str = ""
    tip: str = ""


@dataclass(frozen=True, slots=True)
class Poly:
    """A data line through `points` (pixel pairs, in order)."""

    kind: ClassVar[str] = "poly"
    points: Sequence[tuple[float, float]]
    stroke: str
    dash: str = ""
    tip: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """Marks sharing the chart's small sans-serif text style (`axes`, `legend`)."""

    kind: ClassVar[str] = "group"
    cls: str
    marks: Sequence[Mark]


Mark = Rect | Text | Seg | Poly | Group


@dataclass(frozen=True, slots=True)
class Chart:
    """One accessible SVG chart: its size, title and description, and its marks in paint order."""

    chart_id: str
    title: str
    desc: str
    width: int
    height: int
    marks: Sequence[Mark]

    def __html__(self) -> Markup:
        # Imported here: the templates' module imports the records that hold charts.
        from harness.report.jinja import render_chart

        return render_chart(self)

    def __str__(self) -> str:
        return str(self.__html__())
