"""An append-only JSON-lines file that keeps a fake's state across restarts (`--data-dir`).

One entry per line; on opening, every existing line is handed to `replay` in order, and a line
that is not JSON (or that `replay` refuses) names the file and the line. The callers hold their
own lock around every call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["JsonLinesFile"]


class JsonLinesFile:
    """`directory/name`, replayed on open, then appended to; None directory: nothing on disk."""

    def __init__(
        self,
        directory: str | Path | None,
        name: str,
        *,
        what: str,
        replay: Callable[[Any], None],
    ) -> None:
        self._file: TextIO | None = None
        if directory is None:
            return
        path = Path(directory) / name
        if path.exists():
            _replay(path, what, replay)
        self._file = path.open("a", encoding="utf-8")

    def append(self, entries: Iterable[object]) -> None:
        if self._file is not None:
            self._file.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
            self._file.flush()

    def clear(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _replay(path: Path, what: str, replay: Callable[[Any], None]) -> None:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                replay(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not {what}") from exc
