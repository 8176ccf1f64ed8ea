"""What a team chooses about its report: the title, its own front text, the built-in findings.

`ReportOptions` travels from the command line (`report --title`, `--about FILE.md`,
`--no-findings`) to every renderer. `about_blocks` reads the team's Markdown as the page's
blocks: a small, safe subset (headings, paragraphs, bullet lists, `code`, **bold**, links), which
the templates escape like every other text, so a front text can never inject markup or scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from harness.report.html_blocks import (
    Block,
    Bullets,
    Code,
    Heading,
    Inline,
    Link,
    Para,
    Rich,
    Strong,
)

__all__ = ["BUILT_IN", "DEFAULT_TITLE", "ReportOptions", "about_blocks"]

DEFAULT_TITLE: Final = "Reliability report"

# Only web, in-page and relative links: no scheme but http(s), so never `javascript:`.
_INLINE: Final = re.compile(
    r"\*\*(.+?)\*\*|\[([^\]]+)\]\((https?://[^)\s]+|#[^)\s]*|[\w./-][^):\s]*)\)"
)
"""**bold**, or a [link](target)."""


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


def _inline(text: str) -> Rich:
    """`code`, **bold** and [links](target) as inline pieces; everything else stays text."""
    out: list[Inline] = []
    for i, part in enumerate(text.split("`")):
        if i % 2:
            out.append(Code(part))
            continue
        at = 0
        for m in _INLINE.finditer(part):
            out.append(part[at : m.start()])
            bold, label, href = m.group(1), m.group(2), m.group(3)
            out.append(Strong(bold) if bold is not None else Link(href, label))
            at = m.end()
        out.append(part[at:])
    return tuple(x for x in out if x != "")


def about_blocks(markdown: str) -> list[Block]:
    """The Markdown subset as blocks: `#`..`###` headings (shown one level under the page's
    sections), `-`/`*` bullet lists, blank-line separated paragraphs."""
    blocks: list[Block] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Para(_inline(" ".join(para))))
            para.clear()
        if items:
            blocks.append(Bullets(tuple(_inline(i) for i in items)))
            items.clear()

    for raw in markdown.splitlines():
        line = raw.strip()
        heading = re.match(r"(#{1,3})\s+(.*)", line)
        bullet = re.match(r"[-*]\s+(.*)", line)
        if not line or heading:
            flush()
        if heading:
            blocks.append(Heading(len(heading.group(1)) + 2, _inline(heading.group(2))))
        elif bullet:
            if para:
                flush()
            items.append(bullet.group(1))
        elif line:
            if items:
                flush()
            para.append(line)
    flush()
    return blocks
