"""`reliability-harness load`: locust, headless, against the real service on real Postgres.

The run: validate everything (nothing starts on bad input), start the service and the fake n8n
as real processes (`harness.live.stack`), run locust headless (with `workers > 0`, locust's own
master/worker mode, K worker processes on this machine), drain the outbox to completion, check
the system invariants against the database and the fake's journal (`harness.live.checks`), then
judge the thresholds. Everything lands under the output directory; `results.json` is described
in `docs/load.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import os
import platform
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from harness.data import data_path
from harness.live.checks import (
    Accepted,
    calls_from_journal,
    check_delivered_reached_n8n,
    check_drained,
    check_no_double_processing,
    check_nothing_lost,
    check_quota,
    read_snapshot,
)
from harness.live.stack import (
    LOOPBACK,
    Stack,
    StackConfig,
    StackError,
    Supervisor,
    child_env,
    ensure_port_free,
    free_port,
    make_tenants,
)
from harness.verdict import InvariantResult
from reliability.clock import Clock, SystemClock
from reliability.config import DEFAULT_ROUTES, Settings

__all__ = [
    "DEFAULT_LOCUSTFILE",
    "DEFAULT_SHARES",
    "DEFAULT_THRESHOLDS_FILE",
    "REQUEST_NAMES",
    "RESULTS_SCHEMA",
    "USER_CLASSES",
    "HistoryPoint",
    "LoadConfig",
    "LoadError",
    "LoadOutcome",
    "StatRow",
    "ThresholdResult",
    "Thresholds",
    "evaluate_thresholds",
    "load_thresholds",
    "parse_duration",
    "parse_thresholds",
    "preflight",
    "read_history",
    "read_stats",
    "render_table",
    "run_load",
    "validate",
    "write_stats_csv",
]

RESULTS_SCHEMA: Final = "reliability-harness/load-results"
RESULTS_SCHEMA_VERSION: Final = 1

DEFAULT_LOCUSTFILE: Final = data_path("loadtests", "locustfile.py")
DEFAULT_THRESHOLDS_FILE: Final = data_path("loadtests", "thresholds.yaml")

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

USER_CLASSES: Final[Mapping[str, str]] = {
    "cron": "CronUser",
    "stripe": "StripeUser",
    "admin": "DlqAdminUser",
}
"""`--user-classes` names -> the locustfile's user classes."""

DEFAULT_SHARES: Final[Mapping[str, float]] = {
    "wrong_secret": 0.05,
    "duplicate": 0.10,
    "bad_signature": 0.05,
}
"""Shares of requests that must be refused or answered as duplicates (see the locustfile)."""

_MAX_DURATION: Final = 24 * 3600.0
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


class LoadError(Exception):
    """Bad input or a run that could not be carried out. `exit_code`: 2 input, 3 run."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- input ------------------------------------------------------------------------------------


def parse_duration(text: str, *, what: str = "--duration") -> float:
    """Seconds from `90`, `90s`, `2m`, `1h30m`, `1m30s` (as locust's `-t` takes them)."""
    raw = text.strip().lower()
    seconds: float | None = None
    try:
        seconds = float(raw)
    except ValueError:
        match = _DURATION.match(raw)
        if match and raw:
            h, m, s = (match.group(k) for k in ("h", "m", "s"))
            seconds = int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds is None or not math.isfinite(seconds):
        raise LoadError(f"{what}: cannot parse {text!r}; use e.g. 60s, 90, 2m or 1h30m")
    if not 0 < seconds <= _MAX_DURATION:
        raise LoadError(f"{what}: must be more than 0 and at most 24h, got {text!r}")
    return seconds


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"{source}: cannot read the thresholds file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: not valid YAML: {exc}") from None
    return parse_thresholds({} if data is None else data, source=source)


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


# -- results ----------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    name: str
    limit: float
    value: float
    passed: bool


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


def render_table(
    stats: Sequence[StatRow],
    thresholds: Sequence[ThresholdResult],
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


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """A validated load run (build it with `harness.cli.load`, or directly in tests)."""

    users: int
    spawn_rate: float
    duration: float
    out_dir: Path
    database_url: str
    thresholds: Thresholds
    faults_file: Path | None = None
    workers: int = 0
    tenants: int = 5
    concurrency_limit: int = 5
    seed: int = 0
    user_classes: tuple[str, ...] = tuple(USER_CLASSES)
    shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    wait: tuple[float, float] = (0.05, 0.2)
    drain_timeout: float = 60.0
    cron_drain_interval: float = 1.0
    service_workers: int = 1
    ready_timeout: float = 30.0
    service_port: int = 0
    n8n_port: int = 0
    master_port: int = 0
    settings: Mapping[str, str] = field(default_factory=dict)
    locustfile: Path = DEFAULT_LOCUSTFILE
    keep_schema: bool = False
    command: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration_s": self.duration,
            "workers": self.workers,
            "tenants": self.tenants,
            "concurrency_limit": self.concurrency_limit,
            "seed": self.seed,
            "user_classes": list(self.user_classes),
            "shares": {**DEFAULT_SHARES, **self.shares},
            "wait_s": list(self.wait),
            "faults": None if self.faults_file is None else str(self.faults_file),
            "drain_timeout_s": self.drain_timeout,
            "cron_drain_interval_s": self.cron_drain_interval,
            "service_workers": self.service_workers,
            "locustfile": str(self.locustfile),
            "settings": dict(self.settings),
        }


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    passed: bool
    results_path: Path
    table: str


def validate(config: LoadConfig) -> None:
    """Everything that can be checked before a process starts; raises `LoadError`."""
    if config.users < 1:
        raise LoadError(f"--users: must be at least 1, got {config.users}")
    if not config.spawn_rate > 0 or not math.isfinite(config.spawn_rate):
        raise LoadError(f"--spawn-rate: must be a positive number, got {config.spawn_rate}")
    if not 0 <= config.workers <= 64:
        raise LoadError(f"--workers: must be in 0..64, got {config.workers}")
    if config.tenants < 1:
        raise LoadError(f"--tenants: must be at least 1, got {config.tenants}")
    if not config.user_classes:
        raise LoadError("--user-classes: name at least one of " + ", ".join(USER_CLASSES))
    for name in config.user_classes:
        if name not in USER_CLASSES:
            raise LoadError(
                f"--user-classes: unknown user class {name!r}; known: " + ", ".join(USER_CLASSES)
            )
    for key, value in config.shares.items():
        if key not in DEFAULT_SHARES:
            raise LoadError(f"--share: unknown share {key!r}; known: " + ", ".join(DEFAULT_SHARES))
        if not 0 <= value <= 1:
            raise LoadError(f"--share: {key} must lie in [0, 1], got {value}")
    low, high = config.wait
    if not 0 <= low <= high:
        raise LoadError(f"--wait: need 0 <= min <= max, got {low}-{high}")
    if not config.locustfile.is_file():
        raise LoadError(f"--locustfile: no such file {config.locustfile}")
    if config.faults_file is not None:
        from harness.fakes.faults import FaultProfileError, load_profile

        try:
            load_profile(config.faults_file)
        except FaultProfileError as exc:
            raise LoadError(f"--faults: {exc}") from None
    if config.master_port:
        try:
            ensure_port_free(config.master_port, what="--master-port")
        except StackError as exc:
            raise LoadError(str(exc)) from None


def _stack_config(config: LoadConfig) -> StackConfig:
    return StackConfig(
        database_url=config.database_url,
        run_dir=config.out_dir / "run",
        tenants=make_tenants(
            config.tenants, config.seed, concurrency_limit=config.concurrency_limit
        ),
        seed=config.seed,
        faults_file=config.faults_file,
        service_port=config.service_port,
        n8n_port=config.n8n_port,
        service_workers=config.service_workers,
        settings=config.settings,
        ready_timeout=config.ready_timeout,
        keep_schema=config.keep_schema,
    )


def _locust_env(config: LoadConfig, stack: Stack, accepted_dir: Path) -> dict[str, str]:
    tenants = {t.tenant_id: t.secret for t in stack.config.tenants}
    routes = dict(DEFAULT_ROUTES)
    raw_routes = stack.service_env().get("N8N_ROUTES")
    if raw_routes:
        routes = {k: tuple(v) for k, v in json.loads(raw_routes).items()}
    return {
        "LOADTEST_CRON_SECRET": stack.cron_secret,
        "LOADTEST_ADMIN_TOKEN": stack.admin_token,
        "LOADTEST_TENANTS": json.dumps(tenants),
        "LOADTEST_EVENT_TYPES": json.dumps(sorted(t for t, w in routes.items() if w)),
        "LOADTEST_SHARES": json.dumps({**DEFAULT_SHARES, **config.shares}),
        "LOADTEST_SEED": str(config.seed),
        "LOADTEST_WAIT": f"{config.wait[0]}-{config.wait[1]}",
        "LOADTEST_ACCEPTED_DIR": str(accepted_dir),
    }


def _routes(stack: Stack) -> dict[str, tuple[str, ...]]:
    raw = stack.service_env().get("N8N_ROUTES")
    if not raw:
        return dict(DEFAULT_ROUTES)
    return {k: (v,) if isinstance(v, str) else tuple(v) for k, v in json.loads(raw).items()}


def _read_accepted(accepted_dir: Path) -> list[Accepted]:
    out: list[Accepted] = []
    for path in sorted(accepted_dir.glob("accepted-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                out.append(Accepted(item["tenant_id"], item["event_id"], item["event_type"]))
    return out


def _environment(stack: Stack) -> dict[str, Any]:
    server = ""
    try:
        with stack.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
            server = str(row[0]) if row else ""
    except Exception as exc:
        server = f"unknown ({type(exc).__name__})"
    try:
        from importlib.metadata import version

        locust_version = version("locust")
    except Exception:
        locust_version = "unknown"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "locust": locust_version,
        "postgres": server,
        "loopback": LOOPBACK,
    }


def preflight(config: LoadConfig) -> Settings:
    """`validate` plus the service's own settings and tenants, checked the way the service
    will: what can fail before a server or a process starts; raises `LoadError`."""
    validate(config)
    stack = Stack(_stack_config(config), Supervisor(config.out_dir / "logs"))
    try:
        return stack.validate()
    except StackError as exc:
        raise LoadError(str(exc)) from None


async def run_load(
    config: LoadConfig,
    *,
    clock: Clock | None = None,
    log: Callable[[str], None] | None = None,
) -> LoadOutcome:
    """Run the whole load test; raises `LoadError` (nothing half-done is left running)."""
    clock = clock or SystemClock()
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    validate(config)
    supervisor = Supervisor(config.out_dir / "logs", on_event=say)
    stack = Stack(_stack_config(config), supervisor, clock=clock, log=say)
    try:
        settings = stack.validate()
    except StackError as exc:
        raise LoadError(str(exc)) from None
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    accepted_dir = out / "accepted"
    for stale in [
        *out.glob("locust_*"),
        *accepted_dir.glob("accepted-*.jsonl"),
        out / "results.json",
    ]:
        stale.unlink(missing_ok=True)
    accepted_dir.mkdir(exist_ok=True)
    master_port = config.master_port or free_port()

    started = datetime.now(UTC)
    try:
        try:
            await stack.start()
        except StackError as exc:
            raise LoadError(str(exc), exit_code=3) from None
        await stack.reset_fake()
        record = await _run_locust(
            config, stack, supervisor, clock, prefix, accepted_dir, master_port, say
        )
        say("locust finished; draining the outbox")
        drain = await stack.drain_until_idle(timeout=config.drain_timeout)
        say(
            f"drain: {drain.calls} calls in {drain.elapsed:.1f}s, totals {dict(drain.totals)}, "
            f"{drain.pending_left} pending"
        )
        journal = await stack.journal()
        with stack.connect() as conn:
            snap = read_snapshot(conn)
        calls = calls_from_journal(journal)
        limits = {t.tenant_id: t.concurrency_limit for t in stack.config.tenants}
        invariants = [
            check_nothing_lost(_read_accepted(accepted_dir), snap, _routes(stack)),
            check_no_double_processing(snap, calls),
            check_quota(
                journal.get("peak_in_flight", {}), limits, global_max=settings.n8n_max_concurrency
            ),
            check_delivered_reached_n8n(snap, calls),
            check_drained(snap, completed=drain.completed, elapsed=drain.elapsed),
        ]
        environment = _environment(stack)
    finally:
        await stack.aclose()

    stats_path = prefix.with_name("locust_stats.json")
    if not stats_path.is_file():
        raise LoadError(f"locust wrote no stats ({stats_path}); see {out / 'logs'}", exit_code=3)
    stats = read_stats(stats_path)
    write_stats_csv(stats, out / "stats.csv")
    history = read_history(prefix.with_name("locust_stats_history.csv"))
    threshold_results = evaluate_thresholds(stats, config.thresholds)
    passed = all(t.passed for t in threshold_results) and all(i.passed for i in invariants)
    results = {
        "schema": RESULTS_SCHEMA,
        "schema_version": RESULTS_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "started_at": started.isoformat(),
        "environment": environment,
        "command": list(config.command),
        "config": config.to_json(),
        "thresholds": config.thresholds.to_json(),
        "stats": [_stat_json(r) for r in stats],
        "history": [_clean(asdict(p)) for p in history],
        "timeline": record.timeline,
        "cron_drains": record.drains_json(),
        "drain": {
            "calls": drain.calls,
            "totals": dict(drain.totals),
            "pending_left": drain.pending_left,
            "elapsed_s": round(drain.elapsed, 3),
            "completed": drain.completed,
        },
        "n8n": {
            "calls": len(calls),
            "by_status": _by_status(calls),
            "peak_in_flight": journal.get("peak_in_flight", {}),
        },
        "invariants": [i.to_json() for i in invariants],
        "threshold_results": [_clean(asdict(t)) for t in threshold_results],
        "passed": passed,
    }
    results_path = out / "results.json"
    tmp = results_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.replace(results_path)
    table = render_table(stats, threshold_results, invariants)
    return LoadOutcome(passed, results_path, table)


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """NaN (a stat locust had no data for) becomes null, so the JSON stays standard."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def _stat_json(row: StatRow) -> dict[str, Any]:
    return _clean(
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


def _by_status(calls: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in calls:
        label = str(c.status) if c.outcome == "answered" else c.outcome
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


async def _run_locust(
    config: LoadConfig,
    stack: Stack,
    supervisor: Supervisor,
    clock: Clock,
    prefix: Path,
    accepted_dir: Path,
    master_port: int,
    say: Callable[[str], None],
) -> _Record:
    """Run locust (master + workers, or one process) to its end; meanwhile sample the service
    once a second and call drain like the external cron does."""

    env = child_env(_locust_env(config, stack, accepted_dir))
    classes = [USER_CLASSES[c] for c in config.user_classes]
    base = [sys.executable, "-m", "locust", "-f", str(config.locustfile)]
    common = ["--host", stack.service_url(), "--loglevel", "WARNING"]
    if config.workers:
        for i in range(config.workers):
            supervisor.start(
                "locust-worker",
                [
                    *base,
                    "--worker",
                    "--master-host",
                    LOOPBACK,
                    "--master-port",
                    str(master_port),
                    *common,
                    *classes,
                ],
                env={**env, "LOADTEST_PROCESS": f"worker{i}"},
            )
    argv = [
        *base,
        "--headless",
        "-u",
        str(config.users),
        "-r",
        f"{config.spawn_rate:g}",
        "-t",
        f"{config.duration:g}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(prefix),
        "--json-file",
        str(prefix.with_name("locust_stats")),
        "--only-summary",
        *common,
    ]
    if config.workers:
        argv += [
            "--master",
            "--master-bind-host",
            LOOPBACK,
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(config.workers),
            "--expect-workers-max-wait",
            "30",
        ]
    master = supervisor.start(
        "locust", [*argv, *classes], env={**env, "LOADTEST_PROCESS": "master"}
    )
    say(
        f"locust: {config.users} users, spawn rate {config.spawn_rate:g}/s, "
        f"{config.duration:g}s, {config.workers or 'no'} workers, against {stack.service_url()}"
    )
    record = _Record()
    began = clock.monotonic()
    limit = config.duration + 30 + (30 if config.workers else 0) + config.users / config.spawn_rate
    next_sample = began
    cron = asyncio.create_task(_cron_drains(stack, clock, config.cron_drain_interval, record))
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            while master.alive():
                now = clock.monotonic()
                if now - began > limit:
                    raise LoadError(
                        f"locust did not finish within {limit:.0f}s; see {master.log_path}",
                        exit_code=3,
                    )
                if now >= next_sample:
                    record.timeline.append(await _sample(stack, http, round(now - began, 2)))
                    next_sample += 1.0
                await clock.sleep(0.1)
    finally:
        cron.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cron
    record.timeline.append(await _sample(stack, http=None, t=round(clock.monotonic() - began, 2)))
    for proc in supervisor.processes:
        if proc.name == "locust-worker":
            supervisor.stop(proc)
    if master.popen.returncode not in (0, 1):
        raise LoadError(
            f"locust exited with code {master.popen.returncode}; its output "
            f"({master.log_path}):\n{master.tail()}",
            exit_code=3,
        )
    return record


@dataclass
class _Record:
    """What the runner saw while locust ran: the service timeline and the cron drains."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    drain_calls: int = 0
    drain_errors: int = 0
    drain_totals: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None

    def drains_json(self) -> dict[str, Any]:
        return {
            "calls": self.drain_calls,
            "errors": self.drain_errors,
            "totals": dict(self.drain_totals),
            "last_error": self.last_error,
        }


async def _cron_drains(stack: Stack, clock: Clock, interval: float, record: _Record) -> None:
    """The external scheduler's `POST /api/cron/drain`, every `interval` seconds (0: never)."""
    if interval <= 0:
        return
    while True:
        await clock.sleep(interval)
        try:
            counts = await stack.drain()
        except (httpx.HTTPError, StackError) as exc:
            record.drain_errors += 1
            record.last_error = str(exc)[:300]
            continue
        record.drain_calls += 1
        for key, value in counts.items():
            record.drain_totals[key] = record.drain_totals.get(key, 0) + value


_METRIC = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")


async def _sample(stack: Stack, http: httpx.AsyncClient | None, t: float) -> dict[str, Any]:
    """One point of the service timeline: outbox pending, DLQ depth, breakers open (from
    `reliability_breaker_state`, 2 = open) and breaker openings so far."""
    point: dict[str, Any] = {"t": t}
    try:
        point["pending"] = stack.pending_count()
        point["dlq"] = stack.dlq_depth()
    except Exception as exc:
        point["error"] = f"{type(exc).__name__}"
    if http is None:
        return point
    try:
        text = (await http.get(stack.service_url() + "/metrics")).text
    except httpx.HTTPError:
        return point
    open_now = 0
    openings = 0.0
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        name, labels, value = match.group("name", "labels", "value")
        if name == "reliability_breaker_state" and float(value) == 2:
            open_now += 1
        elif name == "reliability_breaker_transitions_total" and 'to_state="OPEN"' in labels:
            openings += float(value)
    point["breakers_open"] = open_now
    point["breaker_openings"] = int(openings)
    return point
