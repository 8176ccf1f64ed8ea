"""Reliability reports from chaos and load results: HTML, Markdown, JSON and JUnit.

`render_report` turns validated results into the four files' text (pure); `write_report` puts
them in place atomically: rendered in memory, written to a sibling temporary folder, then
swapped in, so a bad input or a crash never leaves a partial report behind.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Final

from harness.report.html import render_html
from harness.report.json_out import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, render_json
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.model import Report, ResultsError, load_report
from harness.report.options import BUILT_IN, ReportOptions

__all__ = [
    "REPORT_FILES",
    "REPORT_SCHEMA",
    "REPORT_SCHEMA_VERSION",
    "Report",
    "ReportOptions",
    "ResultsError",
    "build_report",
    "generator_name",
    "load_report",
    "render_report",
    "write_report",
]

REPORT_FILES: Final = ("index.html", "summary.md", "report.json", "junit.xml")


def generator_name() -> str:
    """`reliability-harness <version> (Python <version>)`, for the environment section."""
    try:
        version = metadata.version("reliability-harness")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"reliability-harness {version} (Python {platform.python_version()})"


def render_report(
    report: Report, *, generated_at: str, generator: str, options: ReportOptions = BUILT_IN
) -> dict[str, str]:
    """The text of every report file, keyed by file name."""
    g, gen = generated_at, generator
    return {
        "index.html": render_html(report, generated_at=g, generator=gen, options=options),
        "summary.md": render_markdown(report, generated_at=g, generator=gen, options=options),
        "report.json": render_json(report, generated_at=g, generator=gen, options=options),
        "junit.xml": render_junit(report, generated_at=generated_at),
    }


def build_report(
    paths: Sequence[Path], *, generated_at: str, options: ReportOptions = BUILT_IN
) -> dict[str, str]:
    """Load and validate every results file, then render; raises `ResultsError` on bad input."""
    return render_report(
        load_report(paths), generated_at=generated_at, generator=generator_name(), options=options
    )


def write_report(files: Mapping[str, str], out: Path) -> None:
    """Write the report folder `out` as a whole: either the complete new report or the old one.

    An existing `out` is replaced only when it holds nothing but report files, so pointing
    `--out` at a folder with other content is refused rather than wiped.
    """
    out = out.absolute()
    if out.exists():
        if not out.is_dir():
            raise ResultsError(f"{out}: exists and is not a directory")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in REPORT_FILES)
        if foreign:
            raise ResultsError(
                f"{out}: holds files that are not part of a report ({', '.join(foreign[:5])}); "
                "choose an empty or new folder"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old: Path | None = None
    try:
        for name, text in files.items():
            with (tmp / name).open("w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        tmp.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            old.rmdir()
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        if old is not None and not out.exists():
            old.rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
