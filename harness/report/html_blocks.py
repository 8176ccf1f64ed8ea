"""The HTML report's building blocks: escaping, ids, verdict marks, tables and chart+table pairs.

Tables, pairs and verdict marks come from the macros of templates/blocks.html.j2 (Jinja2,
autoescaped); every block returns well-formed (polyglot) markup as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from html import escape
from typing import Final

from harness.report import jinja, scales
from harness.report.model import Invariant

__all__ = [
    "Ids",
    "esc",
    "fmt_cell",
    "invariants_table",
    "md_code",
    "pair",
    "table",
    "verdict",
]

_MAX_TABLE_ROWS: Final = 60
_SIDE_COLUMNS: Final = 6


class Ids:
    """Deterministic, unique element ids."""

    def __init__(self) -> None:
        self._n = 0
        self._used: set[str] = set()

    def chart(self) -> str:
        self._n += 1
        return f"chart-{self._n}"

    def slug(self, text: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        slug, n = base, 1
        while slug in self._used:
            n += 1
            slug = f"{base}-{n}"
        self._used.add(slug)
        return slug


def esc(s: object) -> str:
    return escape(scales.clean(s), quote=True)


def verdict(passed: bool, yes: str = "held", no: str = "broken") -> str:
    return str(jinja.block("mark")(passed, yes, no))


def table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    raw: bool = False,
    note: str = "",
) -> str:
    """A table with a caption; the first cell of each row is its header. `raw` cells are HTML
    (built by these blocks); every other cell is text, escaped by the template."""
    shown = [
        [jinja.Markup(c) if raw else scales.clean(c) for c in row] for row in rows[:_MAX_TABLE_ROWS]
    ]
    more = len(rows) - len(shown)
    return str(
        jinja.block("table")(
            scales.clean(caption),
            [scales.clean(c) for c in columns],
            shown,
            list(numeric),
            scales.clean(note.strip()),
            more,
        )
    )


def pair(chart: str, table: str, caption: str) -> str:
    """A chart with its caption, and the table of its data beside it; a table wider than
    `_SIDE_COLUMNS` columns goes under the chart instead, where it has the page's width."""
    widest = max(
        (t.split("</tr>")[0].count('scope="col"') for t in table.split("<table")), default=0
    )
    return str(
        jinja.block("pair")(
            jinja.Markup(chart), jinja.Markup(table), scales.clean(caption), widest > _SIDE_COLUMNS
        )
    )


def fmt_cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return scales.fmt_num(v)
    return "" if v is None else str(v)


def md_code(text: str) -> str:
    """Escape, then render `backticked` spans as code."""
    return str(jinja.md_code(text))


def invariants_table(invs: Sequence[Invariant], caption: str) -> Iterator[str]:
    rows = [
        [
            esc(i.name),
            verdict(i.passed),
            "" if i.checked is None else f"{i.checked:,}",
            esc(i.details),
        ]
        for i in invs
    ]
    yield table(caption, ("invariant", "verdict", "checked", "details"), rows, raw=True)
    for i in invs:
        if i.counterexample is not None:
            body = json.dumps(i.counterexample, indent=2, sort_keys=True, ensure_ascii=False)
            yield f"<h4>Counterexample: {esc(i.name)}</h4><pre>{esc(body)}</pre>"
