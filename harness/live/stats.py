"""What locust measured, read from the files it writes, and the summary table of a run."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.live.errors import LoadError
from harness.verdict import InvariantResult

__all__ = [
    "AGGREGATED",
    "REQUEST_NAMES",
    "HistoryPoint",
    "StatRow",
    "clean",
    "read_history",
    "read_stats",
    "render_table",
    "stat_json",
    "write_stats_csv",
]

REQUEST_NAMES: Final = (
    "cron ok",
    "cron forbidden",
    "stripe new",
    "stripe duplicate",
    "stripe bad signature",
    "dlq list",
    "dlq retry",
)
"""The locust request names (`name=`), one per contract answer; thresholds may name them."""

AGGREGATED: Final = "Aggregated"


@dataclass(frozen=True, slots=True)
class StatRow:
    """One row of locust's final stats (times in milliseconds)."""

    name: str
    method: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The aggregate once per interval during the run (`t` seconds from the first sample)."""

    t: float
    rps: float
    p50: float
    p95: float
    users: int


def _num(raw: str | None) -> float:
    try:
        value = float(raw or "nan")
    except ValueError:
        return math.nan
    return value


def read_stats(path: Path) -> list[StatRow]:
    """Final stats from locust's `--json-file` output, plus the Aggregated row.

    Locust's `_stats.csv` is rewritten once a second and not at exit, so it can miss the last
    second; the JSON is written at exit from the complete stats. Percentiles are computed from
    its response-time histogram exactly as locust computes them; req/s over the whole run.
    """
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read locust's stats {path}: {exc}", exit_code=3) from None
    if not isinstance(entries, list):
        raise LoadError(f"locust's stats {path}: expected a list of entries", exit_code=3)
    starts = [e["start_time"] for e in entries if e.get("num_requests")]
    lasts = [e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")]
    span = (max(lasts) - min(starts)) if starts and lasts else 0.0
    total: dict[int, int] = {}
    rows: list[StatRow] = []
    for e in entries:
        times = {int(k): int(v) for k, v in e.get("response_times", {}).items()}
        for k, v in times.items():
            total[k] = total.get(k, 0) + v
        rows.append(
            _stat_row(
                e["name"], e["method"], e["num_requests"], e["num_failures"], times,
                e.get("max_response_time"), span,
            )
        )  # fmt: skip
    rows.sort(key=lambda r: (r.name, r.method))
    requests = sum(int(e["num_requests"]) for e in entries)
    failures = sum(int(e["num_failures"]) for e in entries)
    top = max((float(e.get("max_response_time") or 0) for e in entries), default=math.nan)
    rows.append(_stat_row(AGGREGATED, "", requests, failures, total, top, span))
    return rows


def _stat_row(
    name: str,
    method: str,
    requests: int,
    failures: int,
    times: Mapping[int, int],
    top: float | None,
    span: float,
) -> StatRow:
    return StatRow(
        name=name,
        method=method,
        requests=int(requests),
        failures=int(failures),
        rps=requests / span if span > 0 else 0.0,
        p50=_percentile(times, requests, 0.50),
        p95=_percentile(times, requests, 0.95),
        p99=_percentile(times, requests, 0.99),
        max=math.nan if top is None or not requests else float(top),
    )


def _percentile(times: Mapping[int, int], requests: int, percent: float) -> float:
    """locust's `calculate_response_time_percentile` (NaN when there is no request)."""
    if not requests:
        return math.nan
    wanted = int(requests * percent)
    seen = 0
    for t in sorted(times, reverse=True):
        seen += times[t]
        if requests - seen <= wanted:
            return float(t)
    return 0.0


def write_stats_csv(rows: Sequence[StatRow], path: Path) -> None:
    """The final stats as CSV (the `stats` of results.json, one row per request name)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["name", "method", "requests", "failures", "rps", "p50", "p95", "p99", "max"]
        )
        for r in rows:
            writer.writerow(
                [r.name, r.method, r.requests, r.failures, f"{r.rps:.3f}",
                 *(_ms(v) for v in (r.p50, r.p95, r.p99, r.max))]
            )  # fmt: skip


def read_history(path: Path) -> list[HistoryPoint]:
    """The Aggregated rows of locust's `<prefix>_stats_history.csv`."""
    points: list[HistoryPoint] = []
    start: float | None = None
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != AGGREGATED:
                continue
            stamp = _num(row["Timestamp"])
            start = stamp if start is None else start
            points.append(
                HistoryPoint(
                    t=stamp - start,
                    rps=_num(row["Requests/s"]),
                    p50=_num(row["50%"]),
                    p95=_num(row["95%"]),
                    users=int(_num(row["User Count"]) or 0),
                )
            )
    return points


def render_table(
    stats: Sequence[StatRow],
    thresholds: Sequence[Any],
    invariants: Sequence[InvariantResult],
) -> str:
    """The plain-text summary printed at the end of a run."""
    lines = [
        f"{'request':<24}{'reqs':>9}{'fails':>8}{'req/s':>9}{'p50':>7}{'p95':>7}{'p99':>7}"
        f"{'max':>8}  (ms)"
    ]
    for r in stats:
        lines.append(
            f"{r.name:<24}{r.requests:>9}{r.failures:>8}{r.rps:>9.1f}{_ms(r.p50):>7}"
            f"{_ms(r.p95):>7}{_ms(r.p99):>7}{_ms(r.max):>8}"
        )
    lines.append("")
    lines.append(f"{'threshold':<42}{'limit':>10}{'value':>12}  result")
    for t in thresholds:
        lines.append(
            f"{t.name:<42}{t.limit:>10.4g}{t.value:>12.4g}  {'ok' if t.passed else 'FAILED'}"
        )
    lines.append("")
    lines.append(f"{'invariant':<42}result  details")
    for inv in invariants:
        lines.append(f"{inv.name:<42}{'ok' if inv.passed else 'FAILED':<8}{inv.details}")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """NaN (a stat locust had no data for) becomes null, so the JSON stays standard."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def stat_json(row: StatRow) -> dict[str, Any]:
    return clean(
        {
            "name": row.name,
            "method": row.method,
            "requests": row.requests,
            "failures": row.failures,
            "rps": round(row.rps, 3),
            "p50": row.p50,
            "p95": row.p95,
            "p99": row.p99,
            "max": row.max,
        }
    )
