"""The fake n8n's execution list: one entry per webhook call that started its workflow.

n8n records an execution for every call that got past routing, body parsing and the Webhook
node's auth, whatever the answer: a Remove Duplicates drop that answers 500 is still a
*success* in the list. The fake does the same; ids count up from 1 like n8n's. In memory, or
appended to `executions.jsonl` in a data directory so that a restarted fake on the same
directory lists them again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from harness.fakes.jsonl_file import JsonLinesFile

__all__ = ["ExecutionLog", "ExecutionRecord", "LazyRunData"]

_FILE: Final = "executions.jsonl"


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One execution as the fake lists it (times are seconds on the fake's clock)."""

    id: int
    workflow_id: str
    status: str
    """`success` or `error`, as n8n's execution list shows it."""
    started_at: float
    stopped_at: float
    mode: str = "webhook"
    last_node: str = ""
    error: str | None = None
    kept_keys: tuple[str, ...] = ()
    """Dedupe keys that passed a Remove Duplicates node in this execution."""
    dropped_keys: tuple[str, ...] = ()
    run_data: Mapping[str, Any] = field(default_factory=dict)
    """Node name -> its outputs (lists of items), what `includeData` shows."""

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["kept_keys"] = list(self.kept_keys)
        data["dropped_keys"] = list(self.dropped_keys)
        data["run_data"] = dict(self.run_data)
        return data

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExecutionRecord:
        return cls(
            id=int(raw["id"]),
            workflow_id=str(raw["workflow_id"]),
            status=str(raw["status"]),
            started_at=float(raw["started_at"]),
            stopped_at=float(raw["stopped_at"]),
            mode=str(raw.get("mode", "webhook")),
            last_node=str(raw.get("last_node", "")),
            error=raw.get("error"),
            kept_keys=tuple(raw.get("kept_keys", ())),
            dropped_keys=tuple(raw.get("dropped_keys", ())),
            run_data=dict(raw.get("run_data", {})),
        )


class LazyRunData(Mapping[str, Any]):
    """An execution's run data, computed when first read: the run of a workflow that cannot
    fail nor leave state is the same now or later, so a call need not pay for it."""

    def __init__(self, compute: Callable[[], Mapping[str, Any]]) -> None:
        self._compute: Callable[[], Mapping[str, Any]] | None = compute
        self._data: Mapping[str, Any] = {}

    def _get(self) -> Mapping[str, Any]:
        if self._compute is not None:
            self._data, self._compute = self._compute(), None
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class ExecutionLog:
    """The newest `capacity` executions, oldest first (n8n prunes past 10000 by default);
    persisted to `directory` when one is given. `effects()` counts every execution ever."""

    def __init__(self, directory: str | Path | None = None, *, capacity: int = 10_000) -> None:
        self._records: deque[ExecutionRecord] = deque(maxlen=capacity)
        self._next_id = 1
        self._effects: dict[str, int] = {}
        self._lock = threading.Lock()
        self._file = JsonLinesFile(
            directory,
            _FILE,
            what="an execution entry",
            replay=lambda entry: self._keep(ExecutionRecord.from_json(entry)),
        )

    def _keep(self, record: ExecutionRecord) -> None:
        self._records.append(record)
        self._next_id = record.id + 1
        for key in record.kept_keys:
            self._effects[key] = self._effects.get(key, 0) + 1

    def add(self, **fields: Any) -> ExecutionRecord:
        """Record a finished execution with the next id."""
        with self._lock:
            record = ExecutionRecord(id=self._next_id, **fields)
            self._keep(record)
            self._file.append([record.to_json()])
            return record

    def __iter__(self) -> Iterator[ExecutionRecord]:
        with self._lock:
            return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def get(self, execution_id: int) -> ExecutionRecord | None:
        with self._lock:
            for record in self._records:
                if record.id == execution_id:
                    return record
        return None

    def effects(self) -> dict[str, int]:
        """Per dedupe key, how many executions let it through a Remove Duplicates node."""
        with self._lock:
            return dict(self._effects)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._effects.clear()
            self._next_id = 1
            self._file.clear()

    def close(self) -> None:
        with self._lock:
            self._file.close()
