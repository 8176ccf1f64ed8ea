"""Load thresholds: limits on locust's stats (latency percentiles, failures, throughput), read
from YAML, judged against a run's final stats."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.inputs import read_document
from harness.live.errors import LoadError
from harness.live.stats import AGGREGATED, REQUEST_NAMES, StatRow

__all__ = [
    "Limits",
    "ThresholdResult",
    "Thresholds",
    "evaluate_thresholds",
    "load_thresholds",
    "parse_thresholds",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits for one row of locust's stats; `None` means not checked."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_failure_ratio: float | None = None
    min_rps: float | None = None
    min_requests: int | None = None


_LIMIT_KEYS: Final = tuple(Limits.__dataclass_fields__)
_TOP_KEYS: Final = (*_LIMIT_KEYS, "endpoints")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits on the aggregate of all requests, and per request name."""

    aggregate: Limits = field(default_factory=Limits)
    endpoints: Mapping[str, Limits] = field(default_factory=dict)
    source: str = "<thresholds>"

    def to_json(self) -> dict[str, Any]:
        def limits(lim: Limits) -> dict[str, float]:
            return {k: v for k, v in asdict(lim).items() if v is not None}

        out: dict[str, Any] = limits(self.aggregate)
        if self.endpoints:
            out["endpoints"] = {name: limits(lim) for name, lim in self.endpoints.items()}
        out["source"] = self.source
        return out


def load_thresholds(path: str | Path) -> Thresholds:
    """Read a thresholds YAML file; unknown keys and bad values name the key and the file."""
    source = str(path)
    data = read_document(path, source, _unreadable)
    return parse_thresholds({} if data is None else data, source=source)


def _unreadable(source: str, key: str, problem: str) -> LoadError:
    return LoadError(f"{source}: cannot read the thresholds file: {problem}")


def parse_thresholds(data: object, *, source: str = "<thresholds>") -> Thresholds:
    if not isinstance(data, dict):
        raise LoadError(f"{source}: the top level must be a mapping of threshold keys")
    aggregate = _limits(data, source, "", allowed=_TOP_KEYS)
    raw_endpoints = data.get("endpoints", {})
    if not isinstance(raw_endpoints, dict):
        raise LoadError(f"{source}: endpoints: must be a mapping of request name -> limits")
    endpoints: dict[str, Limits] = {}
    for name, raw in raw_endpoints.items():
        if name not in REQUEST_NAMES:
            raise LoadError(
                f"{source}: endpoints.{name}: unknown request name; known: "
                + ", ".join(REQUEST_NAMES)
            )
        if not isinstance(raw, dict):
            raise LoadError(f"{source}: endpoints.{name}: must be a mapping of limits")
        endpoints[name] = _limits(raw, source, f"endpoints.{name}.", allowed=_LIMIT_KEYS)
    return Thresholds(aggregate, endpoints, source)


def _limits(data: Mapping[str, Any], source: str, prefix: str, *, allowed: Sequence[str]) -> Limits:
    for key in data:
        if key not in allowed:
            raise LoadError(
                f"{source}: {prefix}{key}: unknown threshold key; known: " + ", ".join(allowed)
            )
    values: dict[str, Any] = {}
    for key in _LIMIT_KEYS:
        if key not in data or data[key] is None:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise LoadError(f"{source}: {prefix}{key}: must be a number >= 0, got {value!r}")
        if key == "max_failure_ratio" and value > 1:
            raise LoadError(f"{source}: {prefix}{key}: must lie in [0, 1], got {value!r}")
        if key == "min_requests" and value != int(value):
            raise LoadError(f"{source}: {prefix}{key}: must be a whole number, got {value!r}")
        values[key] = int(value) if key == "min_requests" else float(value)
    return Limits(**values)


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    name: str
    limit: float
    value: float
    passed: bool


def evaluate_thresholds(stats: Sequence[StatRow], thresholds: Thresholds) -> list[ThresholdResult]:
    """Judge each configured limit against its stats row; a missing row fails its limits."""
    by_name = {r.name: r for r in stats}
    results: list[ThresholdResult] = []
    targets = [(AGGREGATED, thresholds.aggregate), *thresholds.endpoints.items()]
    for name, limits in targets:
        row = by_name.get(name)
        for key in _LIMIT_KEYS:
            limit = getattr(limits, key)
            if limit is None:
                continue
            value = math.nan if row is None else _measure(row, key)
            passed = value >= limit if key.startswith("min_") else value <= limit
            results.append(ThresholdResult(f"{key} ({name})", float(limit), value, passed))
    return results


def _measure(row: StatRow, key: str) -> float:
    if key == "max_failure_ratio":
        return row.failure_ratio
    if key == "min_rps":
        return row.rps
    if key == "min_requests":
        return float(row.requests)
    return float(getattr(row, key.removesuffix("_ms")))
