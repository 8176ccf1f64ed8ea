"""What a report is built from: chaos and load results as validated, immutable records.

`reading.py` reads and validates the files into these records (every problem names the file
and the key); `load_report` and `load_results` are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "CHAOS_SCHEMA",
    "LOAD_SCHEMA",
    "RESULTS_FILENAME",
    "SUPPORTED_VERSIONS",
    "BreakerPoint",
    "Cell",
    "ChaosResults",
    "Check",
    "Comparison",
    "Invariant",
    "LoadPoint",
    "LoadResults",
    "LoadStat",
    "Report",
    "ResultsError",
    "RetryDelay",
    "Scenario",
    "Series",
    "Threshold",
    "TimePoint",
    "load_report",
    "load_results",
    "resolve_results_path",
]

CHAOS_SCHEMA: Final = "reliability-harness/chaos-results"
LOAD_SCHEMA: Final = "reliability-harness/load-results"
SUPPORTED_VERSIONS: Final = {CHAOS_SCHEMA: (1, 2), LOAD_SCHEMA: (1,)}
"""The versions of each results schema this report reads. Chaos results version 2 (issue 19)
writes `null` where version 1 wrote `-1` (no `--seed`, a time that never came) and renames the
`seed_*` figures and the herd's `matches_study`; version 1 files still read."""
RESULTS_FILENAME: Final = "results.json"

Cell = str | int | float | bool | None
"""One cell of a comparison table."""

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


class ResultsError(ValueError):
    """A results file is missing, unreadable, of another schema (version) or malformed."""


@dataclass(frozen=True, slots=True)
class Invariant:
    """The verdict of one invariant checker (chaos) or load-test check (load)."""

    name: str
    passed: bool
    details: str = ""
    checked: int | None = None
    counterexample: Mapping[str, JSONValue] | None = None


@dataclass(frozen=True, slots=True)
class RetryDelay:
    """One retry delay the dispatcher chose, with the bounds its strategy promises."""

    strategy: str
    attempt: int
    delay: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class BreakerPoint:
    """A breaker entering `state` (lower case: closed, open, half_open) at simulated time `t`."""

    tenant: str
    t: float
    state: str
    variant: str = ""
    """The run variant (herd: "full", "full+budget", ...) the change happened in; "" for one."""


@dataclass(frozen=True, slots=True)
class TimePoint:
    """A value at simulated time `t`; `group` names the line it belongs to ("" for one line).

    `variant` separates runs of the same group under another setting ("budget on"/"budget off"
    in the herd comparison); "" when the producer recorded none.
    """

    t: float
    value: float
    group: str = ""
    variant: str = ""
    bucket: float | None = None
    """Seconds the value was counted over (arrivals), when the producer recorded it."""


@dataclass(frozen=True, slots=True)
class Series:
    """The time series a scenario recorded; any of them may be empty."""

    retry_delays: tuple[RetryDelay, ...] = ()
    breaker_timeline: tuple[BreakerPoint, ...] = ()
    dlq_depth: tuple[TimePoint, ...] = ()
    dlq_purges: tuple[TimePoint, ...] = ()
    arrivals: tuple[TimePoint, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """One claim a comparison's verdict makes, whether it held, and the numbers it rests on."""

    claim: str
    held: bool
    numbers: str = ""


@dataclass(frozen=True, slots=True)
class Comparison:
    """A comparison table: `kind` is "herd", "replay" or "aws-occ"."""

    kind: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    verdict: str = ""
    """The producer's own reading of the table (herd: how it compares with the AWS study)."""
    matches_study: bool | None = None
    checks: tuple[Check, ...] = ()
    """The verdict claim by claim (aws-occ), when the producer wrote them."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario's result: verdicts, key figures, series, and how to reproduce it."""

    name: str
    passed: bool
    invariants: tuple[Invariant, ...]
    seed: int
    command: str
    file: str = ""
    description: str = ""
    store: str = ""
    simulated_seconds: float = 0.0
    wall_seconds: float | None = None
    trace_hash: str = ""
    figures: Mapping[str, float | None] = field(default_factory=dict)
    """Key figures; None (JSON null) for a time that never came (nothing delivered it)."""
    series: Series = field(default_factory=Series)
    comparison: Comparison | None = None


@dataclass(frozen=True, slots=True)
class ChaosResults:
    """A `reliability-harness chaos` results file."""

    path: Path
    generated_at: str
    environment: Mapping[str, str]
    seed: int | None
    """The `--seed` given for the whole run; None when each scenario used its own."""
    command: str
    scenarios: tuple[Scenario, ...]


@dataclass(frozen=True, slots=True)
class LoadStat:
    """Per-endpoint request statistics of a load run (latencies in milliseconds)."""

    name: str
    method: str
    requests: int
    failures: int
    rps: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """Throughput and latency at `t` seconds into a load run (None: no data in that interval)."""

    t: float
    rps: float | None
    p50: float | None
    p95: float | None
    users: int


@dataclass(frozen=True, slots=True)
class Threshold:
    """A load gate: `value` measured against `limit` (None: nothing was measured)."""

    name: str
    limit: float | None
    value: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class LoadResults:
    """A `reliability-harness load` results file."""

    path: Path
    generated_at: str
    environment: Mapping[str, str]
    command: str
    config: Mapping[str, JSONValue]
    thresholds: Mapping[str, JSONValue]
    stats: tuple[LoadStat, ...]
    history: tuple[LoadPoint, ...]
    invariants: tuple[Invariant, ...]
    threshold_results: tuple[Threshold, ...]
    passed: bool


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one report is built from, in the order the inputs were given."""

    chaos: tuple[ChaosResults, ...]
    load: tuple[LoadResults, ...]

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        return tuple(s for c in self.chaos for s in c.scenarios)

    @property
    def inputs(self) -> tuple[ChaosResults | LoadResults, ...]:
        return (*self.chaos, *self.load)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.scenarios) and all(r.passed for r in self.load)


# The reader lives in reading.py; its entry points are re-exported here, where callers have
# always imported them. The package's __init__ imports this module first, so the dataclasses
# above exist by the time reading.py imports them.
from harness.report.reading import (  # noqa: E402
    load_report,
    load_results,
    resolve_results_path,
)
