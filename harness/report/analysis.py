"""What the report says, computed once from the results and shared by every output format.

The findings (where the seed's design fails, what the fixed design does) take their numbers from
the comparison tables and figures in the results; nothing here is a hard-coded measurement.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from harness.report.model import (
    BreakerPoint,
    Cell,
    Comparison,
    LoadResults,
    Report,
    RetryDelay,
    Scenario,
    TimePoint,
)
from harness.report.svg import fmt_duration, fmt_num, time_step

__all__ = [
    "STRATEGY_ORDER",
    "AttemptStats",
    "BucketTable",
    "Finding",
    "StrategyDelays",
    "Totals",
    "arrival_bucket",
    "arrival_lines",
    "arrival_rates",
    "arrival_variants",
    "breaker_lanes",
    "bucket_table",
    "delays_by_strategy",
    "findings",
    "humanize",
    "numeric_columns",
    "position_bin",
    "row_label",
    "strategy_key",
    "totals",
]

STRATEGY_ORDER: Final = ("none", "seed", "additive", "equal", "full", "decorrelated")
_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Finding:
    """One statement for the front page: the seed's behaviour, the fix, and the numbers."""

    key: str
    title: str
    seed_design: str
    fixed_design: str
    evidence: tuple[tuple[str, str], ...]
    """(what, value) pairs, each taken from the results."""
    source: str
    """Where the numbers come from (scenario, seed), or why there are none."""
    measured: bool


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
    count: int


@dataclass(frozen=True, slots=True)
class BucketTable:
    """A time series as a small table: rows are time buckets, cells the max per line."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    exact: bool
    """True when every point is shown (no bucketing)."""


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
        positions = tuple((d.delay - d.low) / (d.high - d.low) for d in ds if d.high - d.low > _EPS)
        out.append(
            StrategyDelays(
                strategy=strategy,
                attempts=attempts,
                positions=positions,
                outside=sum(a.outside for a in attempts),
                count=len(ds),
            )
        )
    return out


def _outside(d: RetryDelay) -> bool:
    tol = _EPS * max(1.0, abs(d.high))
    return d.delay < d.low - tol or d.delay > d.high + tol


def position_bin(position: float) -> int:
    """The histogram bin (of 12, 0.1 wide from -0.1 to 1.1) of a position inside the bounds.

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
    """Per line: (label, bucket seconds, [(t, count / bucket)]), each line's bucket its own."""
    out: list[tuple[str, float, list[tuple[float, float]]]] = []
    for label, pts in arrival_lines(points):
        mine = [p for p in points if ", ".join(x for x in (p.group, p.variant) if x) == label]
        bucket = arrival_bucket(mine)
        out.append((label, bucket, [(t, v / bucket) for t, v in pts]))
    return out


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


def _num(cell: Cell) -> float | None:
    if isinstance(cell, bool) or not isinstance(cell, int | float):
        return None
    return float(cell)


def _find_col(comparison: Comparison, *needles: str) -> int | None:
    nums = numeric_columns(comparison)
    for i in nums:
        name = comparison.columns[i].lower()
        if all(n in name for n in needles):
            return i
    return None


def _first(*options: int | None) -> int | None:
    return next((o for o in options if o is not None), None)


def _name(row: Sequence[Cell]) -> str:
    return next((c.lower() for c in row if isinstance(c, str)), "")


def _find_scenario(report: Report, kind: str) -> tuple[Scenario, Comparison] | None:
    for s in report.scenarios:
        if s.comparison is not None and s.comparison.kind == kind:
            return s, s.comparison
    return None


def _source(s: Scenario) -> str:
    return f"scenario {s.name}, seed {s.seed}" + (f": {s.command}" if s.command else "")


def _row_metrics(comparison: Comparison, row: Sequence[Cell]) -> str:
    parts = [
        f"{humanize(comparison.columns[i])} {fmt_num(v)}"
        for i in numeric_columns(comparison)
        if (v := _num(row[i])) is not None
    ]
    return ", ".join(parts)


def _pick(
    comparison: Comparison,
    prefixes: Sequence[str],
    needles: Sequence[str],
    not_row: Sequence[Cell] | None = None,
) -> Sequence[Cell] | None:
    """The row whose label starts with a prefix, else the first one containing a needle."""
    rows = [r for r in comparison.rows if r is not not_row]
    labels = [row_label(comparison, r).lower() for r in rows]
    for row, label in zip(rows, labels, strict=True):
        if label.startswith(tuple(prefixes)):
            return row
    for row, label in zip(rows, labels, strict=True):
        if any(n in label for n in needles):
            return row
    return None


def _replay_from_figures(
    report: Report,
) -> tuple[Scenario, tuple[tuple[str, str], ...], str] | None:
    """The replay numbers from `seed_*`/`fixed_*` figures, when no comparison table exists."""
    for s in report.scenarios:
        f = s.figures
        keys = [k for k in f if k.startswith(("seed_", "fixed_")) and "replay" in k]
        if not keys:
            continue
        parts: list[str] = []
        evidence: list[tuple[str, str]] = []
        for who in ("seed", "fixed"):
            mine = [(k, v) for k, v in f.items() if k.startswith(f"{who}_")]
            evidence += [(humanize(k), fmt_num(v)) for k, v in mine]
            acc = next((v for k, v in mine if "replay" in k and "accept" in k), None)
            drop = next((v for k, v in mine if "drop" in k), None)
            bits = []
            if acc is not None:
                bits.append(f"{fmt_num(acc)} replayed events accepted")
            if drop is not None:
                bits.append(f"{fmt_num(drop)} legitimate events dropped")
            if bits:
                parts.append(f"{who} design: {' and '.join(bits)}")
        return s, tuple(evidence), "; ".join(parts)
    return None


def _replay_finding(report: Report) -> Finding:
    title = "Replay protection: a last-event-id ledger is not a dedupe"
    seed_words = (
        "The seed remembers only the last processed `event.id` per tenant "
        "(`stripe_event_ledger.last_processed_event_id`). Stripe does not order its deliveries, "
        "so an older event replayed later is not recognised, and a legitimate event that "
        "arrives out of order can be mistaken for one already seen."
    )
    fixed_words = (
        "The fixed design keeps that table for compatibility but dedupes on a set of processed "
        "events keyed by (tenant, event id), kept longer than Stripe's 3-day retry window, "
        "and rejects signatures whose timestamp is outside a 300 s tolerance."
    )
    found = _find_scenario(report, "replay")
    if found is None:
        from_figures = _replay_from_figures(report)
        if from_figures is not None:
            fs, fig_evidence, sentence = from_figures
            return Finding(
                "replay-ledger",
                title,
                f"{seed_words} Measured, {sentence}.",
                fixed_words,
                fig_evidence,
                _source(fs),
                True,
            )
        return Finding(
            "replay-ledger",
            title,
            seed_words,
            fixed_words,
            (),
            "Not measured: these results hold no replay comparison scenario.",
            measured=False,
        )
    s, c = found
    seed_row = _pick(c, ("seed",), ("last", "ledger"))
    fixed_row = _pick(c, ("fixed",), ("set", "processed"), not_row=seed_row)
    evidence: list[tuple[str, str]] = []
    accepted = _first(_find_col(c, "replay"), _find_col(c, "accept"))
    dropped = _first(_find_col(c, "drop"), _find_col(c, "lost"))
    sentences: list[str] = []
    for who, row in (("seed design", seed_row), ("fixed design", fixed_row)):
        if row is None:
            continue
        evidence.append((f"{who} ({row_label(c, row)})", _row_metrics(c, row)))
        bits: list[str] = []
        if accepted is not None and (v := _num(row[accepted])) is not None:
            bits.append(f"{fmt_num(v)} replayed events accepted")
        if dropped is not None and (v := _num(row[dropped])) is not None:
            bits.append(f"{fmt_num(v)} legitimate events dropped")
        if bits:
            sentences.append(f"{who}: {' and '.join(bits)}")
    if seed_row is None and fixed_row is None:
        evidence = [(row_label(c, r), _row_metrics(c, r)) for r in c.rows]
    if sentences:
        seed_words += " Measured, " + "; ".join(sentences) + "."
    return Finding(
        "replay-ledger", title, seed_words, fixed_words, tuple(evidence), _source(s), True
    )


def _herd_finding(report: Report) -> Finding:
    title = "Jitter: the seed's additive 0.1 x base jitter hardly spreads a herd"
    seed_words = (
        "The seed waits `base * 2^attempt + random() * 0.1 * base`: the random part is a tenth "
        "of the base delay, so clients that failed together retry together, in near-lockstep."
    )
    fixed_words = (
        "The fixed design offers full, equal and decorrelated jitter (delays spread over the "
        "whole backoff window) and a retry budget; the herd scenario measures peak arrivals "
        "per second at n8n and total calls for each."
    )
    found = _find_scenario(report, "herd")
    if found is None:
        return Finding(
            "additive-jitter",
            title,
            seed_words,
            fixed_words,
            (),
            "Not measured: these results hold no herd comparison scenario.",
            measured=False,
        )
    s, c = found
    rows = list(c.rows)
    budget = next((i for i, col in enumerate(c.columns) if "budget" in col.lower()), None)
    if budget is not None:
        rows = [r for r in rows if not r[budget]] or rows
    evidence = tuple((row_label(c, r), _row_metrics(c, r)) for r in c.rows)
    cond = " with the retry budget off" if budget is not None else ""
    sentences: list[str] = []
    for needles in (("peak", "retr"), ("peak", "arriv"), ("calls",)):
        col = _find_col(c, *needles)
        if col is None:
            continue
        ranked = sorted((r for r in rows if _num(r[col]) is not None), key=_by_column(col))
        order = ", ".join(f"{_name(r)} {fmt_num(_num(r[col]) or 0.0)}" for r in ranked)
        sentences.append(f"{humanize(c.columns[col])}: {order}")
    if sentences:
        seed_words += f" Measured at n8n{cond}, worst first: " + "; ".join(sentences) + "."
    if c.verdict:
        fixed_words += f" The herd scenario's verdict: {c.verdict}"
        if not c.verdict.endswith("."):
            fixed_words += "."
    else:
        fixed_words += _study_sentence(c, rows)
    return Finding("additive-jitter", title, seed_words, fixed_words, evidence, _source(s), True)


def _by_column(col: int) -> Callable[[Sequence[Cell]], tuple[float, str]]:
    """Sort key: largest value in column `col` first, then by name."""

    def key(row: Sequence[Cell]) -> tuple[float, str]:
        return (-(_num(row[col]) or 0.0), _name(row))

    return key


def _study_sentence(c: Comparison, rows: Sequence[Sequence[Cell]]) -> str:
    """Compare the ranking by total calls (else peak) with the AWS jitter study."""
    col = _first(_find_col(c, "calls"), _find_col(c, "peak"))
    if col is None:
        return ""
    value = {_name(r): _num(r[col]) for r in rows}
    if not {"none", "full", "decorrelated"} <= {k for k, v in value.items() if v is not None}:
        return ""
    ranked = sorted(value, key=lambda k: (-(value[k] or 0.0), k))
    worst, best = ranked[0], set(ranked[-2:])
    what = humanize(c.columns[col])
    if worst == "none" and best == {"full", "decorrelated"}:
        return (
            f" By {what}, this matches the AWS 'Exponential Backoff And Jitter' study "
            "(no jitter worst, full and decorrelated best)."
        )
    return (
        f" By {what}, this differs from the AWS 'Exponential Backoff And Jitter' study (no "
        f"jitter worst, full and decorrelated best): here {worst} is worst and "
        f"{' and '.join(sorted(best))} best; see the herd scenario below."
    )


_SECRET_WORDS: Final = ("secret", "timing", "cron", "forbidden", "bearer")


def _secret_finding(report: Report) -> Finding:
    title = "Cron secret: `secret === expected` leaks timing; a query-string secret leaks to logs"
    seed_words = (
        'The seed checks `url.searchParams.get("secret") === exp`. String equality stops at '
        "the first differing character, so response time tells an attacker how much of a guess "
        "is right; and a secret in the query string is written to access logs, proxy logs and "
        "browser history."
    )
    fixed_words = (
        "The fixed design compares in constant time (`hmac.compare_digest`), also accepts "
        "`Authorization: Bearer <secret>` (the usual cron convention) and never logs the secret."
    )
    evidence: list[tuple[str, str]] = []
    sources: list[str] = []
    for s in report.scenarios:
        hits = [(k, v) for k, v in s.figures.items() if any(w in k.lower() for w in _SECRET_WORDS)]
        for k, v in hits:
            evidence.append((f"{s.name}: {humanize(k)}", fmt_num(v)))
        if hits:
            sources.append(_source(s))
    for lr in report.load:
        for st in lr.stats:
            if any(w in st.name.lower() for w in ("weekly-recap", "cron")):
                evidence.append(
                    (
                        f"load: {st.method} {st.name}".replace("  ", " "),
                        f"{st.requests:,} requests, {st.failures:,} failures, "
                        f"p95 {fmt_num(st.p95)} ms",
                    )
                )
                if lr.command not in sources:
                    sources.append(f"load run: {lr.command}" if lr.command else "load run")
    if not evidence:
        return Finding(
            "cron-secret",
            title,
            seed_words,
            fixed_words,
            (),
            "Not measured by these results: this is a code-level finding; the load test's cron "
            "user exercises the endpoint (run `reliability-harness load` and add its results).",
            measured=False,
        )
    fixed_words += " Measured: " + "; ".join(f"{w}: {v}" for w, v in evidence) + "."
    return Finding(
        "cron-secret", title, seed_words, fixed_words, tuple(evidence), "; ".join(sources), True
    )


def _dlq_finding(report: Report) -> Finding | None:
    def relevance(s: Scenario) -> int:
        named = any(w in s.name.lower() for w in ("dlq", "ttl"))
        purged = any(p.value > 0 for p in s.series.dlq_purges)
        return (0 if named else 2) + (0 if purged else 1)

    for s in sorted(report.scenarios, key=relevance):
        purges = [p for p in s.series.dlq_purges if p.value > 0]
        if not purges and not s.series.dlq_depth:
            continue
        evidence: list[tuple[str, str]] = [
            ("cleanup calls that removed expired entries", fmt_num(len(purges))),
            ("expired entries removed", fmt_num(sum(p.value for p in purges))),
        ]
        if s.series.dlq_depth:
            evidence.append(
                ("largest visible DLQ depth", fmt_num(max(p.value for p in s.series.dlq_depth)))
            )
        for k, v in s.figures.items():
            if "ttl" in k.lower() or "dlq" in k.lower():
                evidence.append((humanize(k), fmt_num(v)))
        ttl = [i for i in s.invariants if "ttl" in i.name.lower() or "dlq" in i.name.lower()]
        held = ", ".join(
            [f"{w} {v}" for w, v in evidence]
            + [f"{i.name} {'held' if i.passed else 'BROKEN'}" for i in ttl]
        )
        return Finding(
            "dlq-timer",
            "DLQ expiry: no hourly timer needed",
            "The seed cleans the dead-letter queue 'every hour', which needs a background timer "
            "that the rest of the design removed, and leaves expired entries visible until then.",
            "The fixed design filters every read on `expires_at` (an entry is invisible from its "
            "expiry on) and lets cron/drain calls remove expired rows, guarded so concurrent "
            "instances don't collide." + (f" In this run: {held}." if held else ""),
            tuple(evidence),
            _source(s),
            True,
        )
    return None


def findings(report: Report) -> list[Finding]:
    """The front-page findings, in the order the design lists them."""
    out = [_replay_finding(report), _herd_finding(report), _secret_finding(report)]
    dlq = _dlq_finding(report)
    if dlq is not None:
        out.append(dlq)
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
