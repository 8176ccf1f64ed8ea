"""What the report draws, computed once from the results and shared by every output format.

Retry delays against their bounds, breaker lanes, arrival rates, time-bucket tables, comparison
rows and the headline totals; the front-page findings are in findings.py.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from harness.report.model import (
    BreakerPoint,
    Cell,
    ChaosResults,
    Comparison,
    LoadResults,
    Report,
    RetryDelay,
    Scenario,
    TimePoint,
)
from harness.report.scales import fmt_duration, fmt_num, time_step

__all__ = [
    "POSITION_LABELS",
    "STRATEGY_ORDER",
    "AttemptStats",
    "BucketTable",
    "StrategyDelays",
    "Totals",
    "arrival_bucket",
    "arrival_lines",
    "arrival_rates",
    "arrival_variants",
    "breaker_lanes",
    "bucket_table",
    "delays_by_strategy",
    "figure_tables",
    "fmt_value",
    "humanize",
    "is_time",
    "numeric_columns",
    "position_bin",
    "row_label",
    "run_length",
    "setting_words",
    "shown_path",
    "strategy_key",
    "totals",
    "words",
]

STRATEGY_ORDER: Final = ("none", "additive", "equal", "full", "decorrelated")
_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class AttemptStats:
    """Retry delays of one strategy at one attempt, against the promised bounds."""

    attempt: int
    count: int
    low: float
    high: float
    minimum: float
    median: float
    maximum: float
    outside: int


@dataclass(frozen=True, slots=True)
class StrategyDelays:
    """All retry delays of one strategy: per attempt, and as a position inside the bounds."""

    strategy: str
    attempts: tuple[AttemptStats, ...]
    positions: tuple[float, ...]
    """(delay - low) / (high - low) for every delay with high > low; 0..1 means in bounds."""
    outside: int
    """Delays outside their bounds: the histogram's two outer bins, plus any zero-width ones."""
    count: int
    bins: tuple[int, ...] = ()
    """The histogram of `positions` (see `position_bin`): the chart draws exactly these."""


@dataclass(frozen=True, slots=True)
class BucketTable:
    """A time series as a small table: rows are time buckets, cells the max per line."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    exact: bool
    """True when every point is shown (no bucketing)."""


def chaos_run_words(c: ChaosResults) -> str:
    """How a chaos run was seeded, in words ("seed" is only ever the random seed)."""
    if c.seed is None:
        return "Chaos run with each scenario's own random seed (no --seed given)"
    return f"Chaos run with random seed {c.seed}"


def chaos_command(c: ChaosResults) -> str:
    """The command that reproduces a chaos run."""
    if c.command:
        return c.command
    return "reliability-harness chaos" + ("" if c.seed is None else f" --seed {c.seed}")


_WORDS: Final = {
    "peak_arrivals_per_s": "peak arrivals at n8n per s (busiest 1 s)",
    "peak_retries_per_s": "peak retries per s (busiest 1 s)",
    "n8n_calls": "calls to n8n",
    "time_until_all_delivered": "time until all delivered",
    "dead_lettered": "dead-lettered",
    "budget": "retry budget",
    "replays_accepted": "replayed events accepted",
    "legitimate_dropped": "legitimate events dropped",
    "completion_s": "time until all succeeded",
}


def words(name: str) -> str:
    """A column or figure name in words, with its unit or window where it has one."""
    return _WORDS.get(name, humanize(name))


def is_time(name: str) -> bool:
    """Whether a figure or column holds seconds (drawn and printed as a duration); a variant's
    figure (`none.time_until_all_delivered`) is judged by its measure."""
    measure = name.rsplit(".", 1)[-1]
    return measure.startswith("time_") or measure.endswith("_seconds") or measure == "completion_s"


def fmt_value(name: str, v: float | None) -> str:
    """A figure's value: a duration for times, "never" for a time that never came."""
    if v is None:
        return "never" if is_time(name) else "n/a"
    return fmt_duration(v) if is_time(name) else fmt_num(v)


def figure_tables(
    figures: Mapping[str, float | None],
) -> tuple[list[tuple[str, str]], tuple[str, ...], list[tuple[str, ...]]]:
    """Key figures as (plain rows, pivot columns, pivot rows): `variant.measure` figures pivot
    into one row per variant and one column per measure; the rest stay name/value pairs."""
    plain: list[tuple[str, str]] = []
    grid: dict[str, dict[str, str]] = {}
    measures: list[str] = []
    for k, v in figures.items():
        variant, dot, measure = k.partition(".")
        if not dot:
            plain.append((words(k), fmt_value(k, v)))
            continue
        if measure not in measures:
            measures.append(measure)
        base, plus, option = variant.partition("+")  # herd labels: `full+budget`
        label = f"{base}, {words(option)} on" if plus else variant
        grid.setdefault(label, {})[measure] = fmt_value(measure, v)
    columns = ("variant", *(words(m) for m in measures))
    rows = [(var, *(cells.get(m, "") for m in measures)) for var, cells in grid.items()]
    return plain, columns, rows


def run_length(s: Scenario) -> float:
    """Simulated seconds of one run of the scenario: a herd comparison's `simulated_seconds`
    adds up its variants' runs, which all last as long (one row per variant)."""
    if s.comparison is not None and s.comparison.kind == "herd" and s.comparison.rows:
        return s.simulated_seconds / len(s.comparison.rows)
    return s.simulated_seconds


def shown_path(text: str) -> str:
    """An absolute path as its last two parts (`…/loadtests/locustfile.py`): a report must not
    carry the layout of the machine it was made on."""
    if not text.startswith("/") or "/" not in text[1:]:
        return text
    return "…/" + "/".join(text.rstrip("/").split("/")[-2:])


def setting_words(v: object) -> str:
    """A configuration value in words: `none` for null, lists and mappings spelled out, paths
    shortened."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return fmt_num(v)
    if isinstance(v, str):
        return shown_path(v)
    if isinstance(v, list):
        return ", ".join(setting_words(x) for x in v) or "none"
    if isinstance(v, dict):
        return "; ".join(f"{words(str(k))} {setting_words(x)}" for k, x in v.items()) or "none"
    return str(v)


def humanize(name: str) -> str:
    """`peak_arrivals_per_s` -> `peak arrivals per s`."""
    return name.replace("_", " ").replace("-", " ").strip()


def strategy_key(s: str) -> tuple[int, str]:
    """Sort key: the known strategies in a fixed order, then the rest by name."""
    low = s.lower()
    return (STRATEGY_ORDER.index(low) if low in STRATEGY_ORDER else len(STRATEGY_ORDER), low)


def delays_by_strategy(delays: Sequence[RetryDelay]) -> list[StrategyDelays]:
    """Group retry delays per strategy (known strategies first) and per attempt."""
    groups: dict[str, list[RetryDelay]] = {}
    for d in delays:
        groups.setdefault(d.strategy, []).append(d)
    out: list[StrategyDelays] = []
    for strategy in sorted(groups, key=strategy_key):
        ds = groups[strategy]
        by_attempt: dict[int, list[RetryDelay]] = {}
        for d in ds:
            by_attempt.setdefault(d.attempt, []).append(d)
        attempts = tuple(
            AttemptStats(
                attempt=a,
                count=len(xs),
                low=min(x.low for x in xs),
                high=max(x.high for x in xs),
                minimum=min(x.delay for x in xs),
                median=statistics.median(x.delay for x in xs),
                maximum=max(x.delay for x in xs),
                outside=sum(1 for x in xs if _outside(x)),
            )
            for a, xs in sorted(by_attempt.items())
        )
        positions = tuple(_position(d) for d in ds if d.high - d.low > _EPS)
        bins = [0] * len(POSITION_LABELS)
        for p in positions:
            bins[position_bin(p)] += 1
        out.append(
            StrategyDelays(
                strategy=strategy,
                attempts=attempts,
                positions=positions,
                outside=sum(a.outside for a in attempts),
                count=len(ds),
                bins=tuple(bins),
            )
        )
    return out


def _position(d: RetryDelay) -> float:
    return (d.delay - d.low) / (d.high - d.low)


def _outside(d: RetryDelay) -> bool:
    """Outside the bounds, by the same rule the histogram bins with (so they cannot disagree)."""
    if d.high - d.low > _EPS:
        return position_bin(_position(d)) in (0, len(POSITION_LABELS) - 1)
    tol = _EPS * max(1.0, abs(d.high))
    return d.delay < d.low - tol or d.delay > d.high + tol


POSITION_LABELS: Final = (
    "below the low bound",
    *(f"{i / 10:g} to {(i + 1) / 10:g}" for i in range(9)),
    "0.9 to 1 (1 = the high bound)",
    "above the high bound",
)
"""The histogram's bins: the bounds are bin edges, a delay at the high bound (the cap) is in."""


def position_bin(position: float) -> int:
    """The histogram bin (of 12: below, ten 0.1 wide from 0 to 1, above) of a position.

    Bins 1..10 cover [0, 1] with both bounds inside (a delay equal to its high bound is in the
    last inner bin); bin 0 is below the low bound, bin 11 above the high bound.
    """
    if position < -_EPS:
        return 0
    if position > 1 + _EPS:
        return 11
    return 1 + min(max(int(position * 10), 0), 9)


def breaker_lanes(
    timeline: Sequence[BreakerPoint], end: float
) -> list[tuple[str, list[tuple[float, float, str]]]]:
    """Per tenant (and variant), sorted, the state segments from each change to the next."""
    by_tenant: dict[str, list[BreakerPoint]] = {}
    for p in timeline:
        lane = f"{p.tenant} ({p.variant})" if p.variant else p.tenant
        by_tenant.setdefault(lane, []).append(p)
    lanes: list[tuple[str, list[tuple[float, float, str]]]] = []
    for tenant in sorted(by_tenant):
        pts = sorted(by_tenant[tenant], key=lambda p: p.t)
        last = max(end, pts[-1].t)
        segs = [
            (p.t, pts[i + 1].t if i + 1 < len(pts) else last, p.state) for i, p in enumerate(pts)
        ]
        lanes.append((tenant, segs))
    return lanes


def arrival_lines(points: Sequence[TimePoint]) -> list[tuple[str, list[tuple[float, float]]]]:
    """Group time points into lines by `group` (strategy) and `variant`, known strategies first."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for p in points:
        groups.setdefault((p.group, p.variant), []).append((p.t, p.value))
    keys = sorted(groups, key=lambda k: (k[1], *strategy_key(k[0])))
    return [(", ".join(x for x in k if x), sorted(groups[k])) for k in keys]


def arrival_bucket(points: Sequence[TimePoint]) -> float:
    """Seconds per arrivals bucket: as recorded, else the smallest gap between bucket starts."""
    recorded = {p.bucket for p in points if p.bucket is not None and p.bucket > 0}
    if recorded:
        return max(recorded)
    ts = sorted({p.t for p in points})
    gaps = [b - a for a, b in itertools.pairwise(ts) if b - a > _EPS]
    return max(min(gaps), 1.0) if gaps else 1.0


def arrival_rates(
    points: Sequence[TimePoint],
) -> list[tuple[str, float, list[tuple[float, float]]]]:
    """Per line: (label, bucket seconds, [(t, count / bucket)]), each line's bucket its own.

    Results record only the buckets that saw arrivals; the empty buckets between (and the one
    after the last) are zeros here, so a herd retrying in lockstep is drawn as the spikes it
    is, not as a line gliding from one spike to the next."""
    out: list[tuple[str, float, list[tuple[float, float]]]] = []
    for label, pts in arrival_lines(points):
        mine = [p for p in points if ", ".join(x for x in (p.group, p.variant) if x) == label]
        bucket = arrival_bucket(mine)
        out.append((label, bucket, [(t, v / bucket) for t, v in _with_empty(pts, bucket)]))
    return out


def _with_empty(pts: Sequence[tuple[float, float]], bucket: float) -> list[tuple[float, float]]:
    """`pts` (bucket starts, ascending) with a zero at every bucket start no point holds."""
    if not pts:
        return []
    held = {round(t / bucket): (t, v) for t, v in pts}
    first, last = min(held), max(held)
    return [held.get(k, (k * bucket, 0.0)) for k in range(first, last + 2)]


def arrival_variants(points: Sequence[TimePoint]) -> list[str]:
    """The distinct variants ("" when none was recorded), sorted."""
    return sorted({p.variant for p in points})


def bucket_table(
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    time_label: str = "simulated time",
    max_rows: int = 24,
    stat: str = "max",
) -> BucketTable:
    """The lines as a table: exact when there are few distinct times, else time buckets."""
    names = tuple(name or "value" for name, _ in lines)
    ts = sorted({t for _, pts in lines for t, _ in pts})
    if not ts:
        return BucketTable(columns=(time_label, *names), rows=(), exact=True)
    span = ts[-1] - ts[0]
    if len(ts) <= max_rows:
        lookup = [dict(pts) for _, pts in lines]
        rows = tuple(
            (fmt_duration(t, span), *(fmt_num(m[t]) if t in m else "" for m in lookup)) for t in ts
        )
        return BucketTable(columns=(time_label, *names), rows=rows, exact=True)
    width = time_step(span, max_rows)
    first = math.floor(ts[0] / width) * width
    n = math.floor((ts[-1] - first) / width) + 1
    rows_l: list[tuple[str, ...]] = []
    for b in range(n):
        lo = first + b * width
        hi = first + (b + 1) * width
        cells: list[str] = []
        for _, pts in lines:
            vs = [v for t, v in pts if lo <= t < hi]
            if not vs:
                cells.append("")
            elif stat == "max":
                cells.append(fmt_num(max(vs)))
            else:
                cells.append(fmt_num(statistics.fmean(vs)))
        rows_l.append((f"{fmt_duration(lo, width)} to {fmt_duration(hi, width)}", *cells))
    label = f"{time_label} (bucket)"
    suffix = " (max)" if stat == "max" else " (mean)"
    return BucketTable(
        columns=(label, *(n + suffix for n in names)), rows=tuple(rows_l), exact=False
    )


def row_label(comparison: Comparison, row: Sequence[Cell]) -> str:
    """A row's name: its non-numeric cells ("full", "full, budget on")."""
    parts: list[str] = []
    for col, cell in zip(comparison.columns, row, strict=True):
        if isinstance(cell, bool):
            parts.append(f"{humanize(col)} {'on' if cell else 'off'}")
        elif isinstance(cell, str):
            parts.append(cell)
    return ", ".join(parts) if parts else "row"


def numeric_columns(comparison: Comparison) -> list[int]:
    """Indexes of the columns whose cells are all numbers (or null)."""
    out: list[int] = []
    for i in range(len(comparison.columns)):
        cells = [r[i] for r in comparison.rows]
        if cells and all(
            c is None or (isinstance(c, int | float) and not isinstance(c, bool)) for c in cells
        ):
            out.append(i)
    return out


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts for the headline."""

    scenarios: int
    scenarios_passed: int
    invariants: int
    invariants_passed: int
    load_runs: int
    load_runs_passed: int
    passed: bool


def totals(report: Report) -> Totals:
    """Headline counts over every scenario and load run."""
    sc = report.scenarios
    invs = [i for s in sc for i in s.invariants]
    load_checks: list[LoadResults] = list(report.load)
    return Totals(
        scenarios=len(sc),
        scenarios_passed=sum(1 for s in sc if s.passed),
        invariants=len(invs),
        invariants_passed=sum(1 for i in invs if i.passed),
        load_runs=len(load_checks),
        load_runs_passed=sum(1 for r in load_checks if r.passed),
        passed=report.passed,
    )
