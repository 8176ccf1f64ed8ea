"""What the HTML report is made of: sections of blocks (headings, paragraphs, tables, figures).

The sections' builders (html.py, html_series.py, html_tables.py, html_study.py) return these
records and nothing else; templates/blocks.html.j2 draws each kind, escaping every text. A
figure is a chart (svg.py's geometry) with the tables of its numbers, so a new figure or table is
data: build a `Figure` or a `Table` and add it to a section's blocks.

Text is a plain `str` or `Rich`: a sequence of strings and inline pieces (`Code`, `Mark`,
`Link`, `Strong`), each drawn by the template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final

from harness.report import scales
from harness.report.marks import Chart
from harness.report.model import Invariant

__all__ = [
    "Block",
    "Bullets",
    "Code",
    "Figure",
    "Heading",
    "Ids",
    "Inline",
    "Link",
    "Mark",
    "Meta",
    "Para",
    "Pre",
    "Rich",
    "Section",
    "Strong",
    "Table",
    "code_spans",
    "fmt_cell",
    "invariants_table",
    "pair",
    "table",
]

_MAX_TABLE_ROWS: Final = 60
_SIDE_COLUMNS: Final = 6


@dataclass(frozen=True, slots=True)
class Code:
    kind: ClassVar[str] = "code"
    text: str


@dataclass(frozen=True, slots=True)
class Strong:
    kind: ClassVar[str] = "strong"
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link: `#anchor` inside the page, or a web or relative address."""

    kind: ClassVar[str] = "link"
    href: str
    text: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A verdict: a tick and `yes`, or a cross and `no`, coloured and worded both."""

    kind: ClassVar[str] = "mark"
    passed: bool
    yes: str = "held"
    no: str = "broken"


Inline = str | Code | Strong | Link | Mark
Rich = str | tuple[Inline, ...]


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


@dataclass(frozen=True, slots=True)
class Heading:
    kind: ClassVar[str] = "heading"
    level: int
    text: Rich
    anchor: str = ""


@dataclass(frozen=True, slots=True)
class Para:
    kind: ClassVar[str] = "para"
    text: Rich
    cls: str = ""


@dataclass(frozen=True, slots=True)
class Bullets:
    kind: ClassVar[str] = "bullets"
    items: Sequence[Rich]


@dataclass(frozen=True, slots=True)
class Pre:
    kind: ClassVar[str] = "pre"
    text: str


@dataclass(frozen=True, slots=True)
class Meta:
    """A definition list of (term, value) pairs; pairs with an empty value are left out."""

    kind: ClassVar[str] = "meta"
    items: Sequence[tuple[str, Rich]]


@dataclass(frozen=True, slots=True)
class Table:
    """A captioned table; the first cell of each row is its header. `more` rows were cut."""

    kind: ClassVar[str] = "table"
    caption: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Rich]]
    numeric: Sequence[int] = ()
    note: str = ""
    more: int = 0


@dataclass(frozen=True, slots=True)
class Figure:
    """A chart with its caption, and the tables of its data beside it (under it when wide)."""

    kind: ClassVar[str] = "figure"
    chart: Chart
    tables: Sequence[Table]
    caption: str

    @property
    def stacked(self) -> bool:
        return max((len(t.columns) for t in self.tables), default=0) > _SIDE_COLUMNS


@dataclass(frozen=True, slots=True)
class Section:
    """A top-level section: its heading (id `anchor-h`) and its blocks in order."""

    kind: ClassVar[str] = "section"
    anchor: str
    heading: Rich
    blocks: Sequence[Block] = field(default_factory=tuple)
    cls: str = ""


Block = Heading | Para | Bullets | Pre | Meta | Table | Figure


def table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Rich]],
    *,
    numeric: Sequence[int] | range = (),
    note: str = "",
) -> Table:
    """A table of at most `_MAX_TABLE_ROWS` rows (report.json holds them all)."""
    shown = [list(r) for r in rows[:_MAX_TABLE_ROWS]]
    return Table(caption, list(columns), shown, list(numeric), note.strip(), len(rows) - len(shown))


def pair(chart: Chart, tables: Table | Sequence[Table], caption: str) -> Figure:
    """A chart with its caption and the table(s) of its data."""
    return Figure(chart, (tables,) if isinstance(tables, Table) else tuple(tables), caption)


def code_spans(text: object) -> tuple[Inline, ...]:
    """Text with `backticked` spans as `Code` pieces (a finding's words)."""
    parts = scales.clean(text).split("`")
    return tuple(Code(p) if i % 2 else p for i, p in enumerate(parts) if p)


def fmt_cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return scales.fmt_num(v)
    return "" if v is None else str(v)


def invariants_table(invs: Sequence[Invariant], caption: str) -> list[Block]:
    rows: list[list[Rich]] = [
        [
            i.name,
            (Mark(i.passed),),
            "" if i.checked is None else f"{i.checked:,}",
            i.details,
        ]
        for i in invs
    ]
    out: list[Block] = [table(caption, ("invariant", "verdict", "checked", "details"), rows)]
    for i in invs:
        if i.counterexample is not None:
            body = json.dumps(i.counterexample, indent=2, sort_keys=True, ensure_ascii=False)
            out += [Heading(4, f"Counterexample: {i.name}"), Pre(body)]
    return out
