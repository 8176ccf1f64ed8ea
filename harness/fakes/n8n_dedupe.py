"""The Remove Duplicates node's history: the key values it has seen, per node or per workflow.

n8n keeps this history in its database, so it survives a restart. The fake keeps it in memory,
or appends it to `dedupe.jsonl` in a data directory (`fake-n8n --data-dir DIR`) and reads it
back when started on the same directory. n8n's history is bounded (`historySize`, default
10000): once an execution would take it past that size, the node fails instead of forgetting
old keys, and `HistoryFull` says so with n8n's message.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from harness.fakes.jsonl_file import JsonLinesFile

__all__ = ["HISTORY_FULL", "DedupeHistory", "HistoryFull"]

HISTORY_FULL: Final = (
    "The number of items to be processed exceeds the maximum history size. Please increase the "
    "history size or reduce the number of items to be processed."
)
_FILE: Final = "dedupe.jsonl"


class HistoryFull(RuntimeError):
    """The execution would take the history past its size: the node fails."""


class DedupeHistory:
    """Seen key values per context (`node:<workflow>:<node>` or `workflow:<workflow>`)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._seen: dict[str, dict[str, None]] = {}
        self._lock = threading.Lock()
        self.directory = Path(directory) if directory is not None else None
        self._file = JsonLinesFile(
            directory, _FILE, what="a dedupe history entry", replay=self._replay
        )

    def _replay(self, entry: Any) -> None:
        self._seen.setdefault(str(entry["context"]), {})[str(entry["key"])] = None

    def count(self, context: str) -> int:
        with self._lock:
            return len(self._seen.get(context, {}))

    def check_and_record(
        self, context: str, keys: Sequence[str], history_size: int
    ) -> tuple[list[str], list[str]]:
        """Split `keys` into (new, seen before) and remember the new ones, as n8n does."""
        with self._lock:
            seen = self._seen.setdefault(context, {})
            if len(seen) + len(keys) > history_size:
                raise HistoryFull(HISTORY_FULL)
            new = [k for k in keys if k not in seen]
            processed = [k for k in keys if k in seen]
            for key in new:
                seen[key] = None
            self._file.append({"context": context, "key": k} for k in new)
            return new, processed

    def clear(self) -> None:
        """Forget everything (and empty the file, when there is one)."""
        with self._lock:
            self._seen.clear()
            self._file.clear()

    def close(self) -> None:
        with self._lock:
            self._file.close()
