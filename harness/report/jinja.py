"""The HTML report's templates (Jinja2, autoescaped): the page and its building blocks.

Every value a template prints is escaped unless it arrives as `Markup` (a chart, a block built
by another template), so no text from the results can become markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from harness.report import scales

__all__ = ["Markup", "block", "md_code", "render_page"]


def md_code(text: object) -> Markup:
    """Escape (control characters dropped), then render `backticked` spans as code."""
    parts = scales.clean(text).split("`")
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )


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
_ENV.filters["code"] = md_code


def block(name: str) -> Callable[..., Markup]:
    """A macro of blocks.html.j2 (`table`, `pair`, `mark`), callable from Python."""
    return cast(Callable[..., Markup], getattr(_ENV.get_template("blocks.html.j2").module, name))


def render_page(**context: Any) -> str:
    """The whole page from page.html.j2."""
    return _ENV.get_template("page.html.j2").render(**context)
