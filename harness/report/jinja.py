"""The HTML report's templates (Jinja2, autoescaped): the page and its building blocks.

Every value a template prints is escaped unless it arrives as `Markup` (a chart, a block built
by another template), so no text from the results can become markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from harness.report import scales
from harness.report.html_blocks import code_spans

__all__ = ["Markup", "px", "render_chart", "render_page", "render_section"]


def _clean(value: object) -> object:
    """Every printed text without control characters (XML forbids them); markup as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return scales.clean(value)
    return value


_ENV: Final = Environment(
    loader=PackageLoader("harness.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    finalize=_clean,
)
_ENV.filters["code"] = code_spans


def px(v: float) -> str:
    """A chart coordinate: an integer as it is, anything else to one decimal (never `-0.0`)."""
    if isinstance(v, int):
        return str(v)
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


_ENV.filters["px"] = px


def render_chart(chart: object) -> Markup:
    """One chart (a `marks.Chart`) as inline SVG, from chart.svg.j2."""
    draw = cast(Callable[[object], Markup], _ENV.get_template("chart.svg.j2").module.chart)  # type: ignore[attr-defined]
    return draw(chart)


def render_section(section: object) -> Markup:
    """One section (an `html_blocks.Section`), from blocks.html.j2."""
    draw = _ENV.get_template("blocks.html.j2").module.section  # type: ignore[attr-defined]
    return cast(Markup, draw(section))


def render_page(**context: Any) -> str:
    """The whole page from page.html.j2."""
    return _ENV.get_template("page.html.j2").render(**context)
