"""The HTML report's building blocks: escaping, ids, verdict marks, tables and chart+table pairs.

Every block returns well-formed (polyglot) markup as text; callers escape nothing themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from html import escape
from typing import Final

from harness.report import scales
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
    cls = "pass" if passed else "fail"
    text = f"\u2714 {yes}" if passed else f"\u2718 {no}"
    return f'<span class="{cls}">{text}</span>'


def table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    raw: bool = False,
    note: str = "",
) -> str:
    """A table with a caption; the first cell of each row is its header. `raw` cells are HTML."""
    out = [f"<table><caption>{esc(caption)}</caption><thead><tr>"]
    out += [f'<th scope="col">{esc(c)}</th>' for c in columns]
    out.append("</tr></thead><tbody>")
    shown = rows[:_MAX_TABLE_ROWS]
    for row in shown:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = cell if raw else esc(cell)
            if i == 0:
                out.append(f'<th scope="row">{text}</th>')
            else:
                cls = ' class="num"' if i in numeric else ""
                out.append(f"<td{cls}>{text}</td>")
        out.append("</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(columns)}">No data recorded.</td></tr>')
    out.append("</tbody></table>")
    if len(rows) > len(shown):
        note = (
            f"{len(rows) - len(shown)} more rows are not shown here; report.json holds them all. "
            + note
        )
    if note:
        out.append(f'<p class="source">{esc(note.strip())}</p>')
    return "".join(out)


def pair(chart: str, table: str, caption: str) -> str:
    return (
        f'<figure class="pair"><div class="chart-box">{chart}'
        f"<figcaption>{esc(caption)}</figcaption></div>"
        f'<div class="data">{table}</div></figure>'
    )


def fmt_cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return scales.fmt_num(v)
    return "" if v is None else str(v)


def md_code(text: str) -> str:
    """Escape, then render `backticked` spans as code."""
    parts = esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


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
