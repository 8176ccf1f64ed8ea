"""What a team chooses about its report: the title, its own front text, the built-in findings.

`ReportOptions` travels from the command line (`report --title`, `--about FILE.md`,
`--no-findings`) to every renderer. `about_html` turns the team's Markdown into markup for the
page: a small, safe subset (headings, paragraphs, bullet lists, `code`, **bold**, links), every
character escaped first, so a front text can never inject markup or scripts into the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Final

__all__ = ["BUILT_IN", "DEFAULT_TITLE", "ReportOptions", "about_html"]

DEFAULT_TITLE: Final = "Reliability report"

# Only web, in-page and relative links: no scheme but http(s), so never `javascript:`.
_LINK: Final = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+|#[^)\s]*|[\w./-][^):\s]*)\)")
_BOLD: Final = re.compile(r"\*\*(.+?)\*\*")


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """The choices a team makes about its report (the defaults: the built-in report)."""

    title: str = DEFAULT_TITLE
    about: str = ""
    """The team's own front text, Markdown; shown first, before the verdict's details."""
    findings: bool = True
    """Whether the built-in findings (the Step 06 design against the fixed one) are shown."""


BUILT_IN: Final = ReportOptions()
"""The report as built in: default title, no front text, the built-in findings shown."""


def _inline(text: str) -> str:
    parts = escape(text, quote=True).split("`")
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
            continue
        part = _BOLD.sub(r"<strong>\1</strong>", part)
        out.append(_LINK.sub(r'<a href="\2">\1</a>', part))
    return "".join(out)


def about_html(markdown: str) -> str:
    """The Markdown subset as HTML: `#`..`###` headings (shown one level under the page's
    sections), `-`/`*` bullet lists, blank-line separated paragraphs."""
    blocks: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in markdown.splitlines():
        line = raw.strip()
        heading = re.match(r"(#{1,3})\s+(.*)", line)
        bullet = re.match(r"[-*]\s+(.*)", line)
        if not line or heading:
            flush()
        if heading:
            level = len(heading.group(1)) + 2
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet:
            if para:
                flush()
            items.append(bullet.group(1))
        elif line:
            if items:
                flush()
            para.append(line)
    flush()
    return "\n".join(blocks)
