"""`reliability-harness load`: locust, headless, against the real service on real Postgres.

The run: validate everything (nothing starts on bad input), start the service and the fake n8n
as real processes (`harness.live.stack`), run locust headless (with `workers > 0`, locust's own
master/worker mode, K worker processes on this machine), drain the outbox to completion, check
the system invariants against the database and the fake's journal (`harness.live.checks`), then
judge the thresholds. Everything lands under the output directory; `results.json` is described
in `docs/load.md`.
"""

from __future__ import annotations

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

from harness.data import data_path
from harness.fakes.duplicates import DuplicateSend, by_cause
from harness.live.checks import (
    Accepted,
    N8nCall,
    calls_from_journal,
    check_delivered_reached_n8n,
    check_drained,
    check_duplicates_explained,
    check_no_double_processing,
    check_nothing_lost,
    check_quota,
    duplicate_sends,
    read_snapshot,
)
from harness.live.errors import LoadError, StackError
from harness.live.locust_run import LocustPlan, Record, locust_env, run_locust
from harness.live.outbox import DrainSummary, OutboxView, drain_until_idle
from harness.live.processes import LOOPBACK, Supervisor, ensure_port_free, free_port
from harness.live.stack import Stack, StackConfig, make_tenants
from harness.live.stats import (
    clean,
    read_history,
    read_stats,
    render_table,
    stat_json,
    write_stats_csv,
)
from harness.live.thresholds import Thresholds, evaluate_thresholds
from harness.outputs import write_text_atomic
from harness.verdict import InvariantResult
from reliability.clock import Clock, SystemClock
from reliability.config import DEFAULT_ROUTES, Settings
from reliability.redact import Redactor

__all__ = [
    "DEFAULT_LOCUSTFILE",
    "DEFAULT_SHARES",
    "DEFAULT_THRESHOLDS_FILE",
    "RESULTS_SCHEMA",
    "USER_CLASSES",
    "LoadConfig",
    "LoadError",
    "LoadOutcome",
    "parse_duration",
    "preflight",
    "run_load",
    "validate",
]

RESULTS_SCHEMA: Final = "reliability-harness/load-results"
RESULTS_SCHEMA_VERSION: Final = 1

DEFAULT_LOCUSTFILE: Final = data_path("loadtests", "locustfile.py")
DEFAULT_THRESHOLDS_FILE: Final = data_path("loadtests", "thresholds.yaml")

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
        with OutboxView(stack).connect() as conn:
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


@dataclass(slots=True)
class _Observed:
    """What a run saw, for its results: locust's run, the final drain, n8n's calls, checks."""

    record: Record
    drain: DrainSummary
    journal: dict[str, Any]
    calls: tuple[N8nCall, ...]
    duplicates: list[DuplicateSend]
    invariants: list[InvariantResult]
    environment: dict[str, Any]


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
    _fresh_out_dir(config.out_dir)
    started = datetime.now(UTC)
    try:
        try:
            await stack.start()
        except StackError as exc:
            raise LoadError(str(exc), exit_code=3) from None
        await stack.reset_fake()
        observed = await _drive(config, settings, stack, supervisor, clock, say)
    finally:
        await stack.aclose()
    return _conclude(config, observed, started)


def _fresh_out_dir(out: Path) -> None:
    """The output folder, without what an earlier run left there."""
    out.mkdir(parents=True, exist_ok=True)
    accepted = out / "accepted"
    for stale in [*out.glob("locust_*"), *accepted.glob("accepted-*.jsonl"), out / "results.json"]:
        stale.unlink(missing_ok=True)
    accepted.mkdir(exist_ok=True)


async def _drive(
    config: LoadConfig,
    settings: Settings,
    stack: Stack,
    supervisor: Supervisor,
    clock: Clock,
    say: Callable[[str], None],
) -> _Observed:
    """Locust, then drain to completion, then the checks against the database and n8n."""
    out = config.out_dir
    accepted = out / "accepted"
    plan = LocustPlan(
        users=config.users,
        spawn_rate=config.spawn_rate,
        duration=config.duration,
        workers=config.workers,
        classes=tuple(USER_CLASSES[c] for c in config.user_classes),
        locustfile=config.locustfile,
        env=locust_env(
            stack, {**DEFAULT_SHARES, **config.shares}, config.seed, config.wait, accepted
        ),
        prefix=out / "locust",
        master_port=config.master_port or free_port(),
        cron_drain_interval=config.cron_drain_interval,
    )
    record = await run_locust(plan, stack, supervisor, clock, say)
    say("locust finished; draining the outbox")
    drain = await drain_until_idle(stack, clock, timeout=config.drain_timeout)
    say(
        f"drain: {drain.calls} calls in {drain.elapsed:.1f}s, totals {dict(drain.totals)}, "
        f"{drain.pending_left} pending"
    )
    journal = await stack.journal()
    with OutboxView(stack).connect() as conn:
        snap = read_snapshot(conn)
    calls = calls_from_journal(journal)
    # No process is killed here: every duplicate send needs a timeout or a lost or error answer.
    duplicates = duplicate_sends(journal, [], read_timeout=settings.n8n_read_timeout_ms / 1000)
    limits = {t.tenant_id: t.concurrency_limit for t in stack.config.tenants}
    invariants = [
        check_nothing_lost(_read_accepted(accepted), snap, _routes(stack)),
        check_no_double_processing(snap, calls),
        check_quota(
            journal.get("peak_in_flight", {}), limits, global_max=settings.n8n_max_concurrency
        ),
        check_delivered_reached_n8n(snap, calls),
        check_drained(snap, completed=drain.completed, elapsed=drain.elapsed),
        check_duplicates_explained(duplicates),
    ]
    return _Observed(record, drain, journal, calls, duplicates, invariants, _environment(stack))


def _conclude(config: LoadConfig, seen: _Observed, started: datetime) -> LoadOutcome:
    """Read locust's stats, judge the thresholds, write `results.json`."""
    out = config.out_dir
    prefix = out / "locust"
    stats_path = prefix.with_name("locust_stats.json")
    if not stats_path.is_file():
        raise LoadError(f"locust wrote no stats ({stats_path}); see {out / 'logs'}", exit_code=3)
    stats = read_stats(stats_path)
    write_stats_csv(stats, out / "stats.csv")
    history = read_history(prefix.with_name("locust_stats_history.csv"))
    threshold_results = evaluate_thresholds(stats, config.thresholds)
    passed = all(t.passed for t in threshold_results) and all(i.passed for i in seen.invariants)
    drain = seen.drain
    results = {
        "schema": RESULTS_SCHEMA,
        "schema_version": RESULTS_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "started_at": started.isoformat(),
        "environment": seen.environment,
        "command": list(config.command),
        "config": config.to_json(),
        "thresholds": config.thresholds.to_json(),
        "stats": [stat_json(r) for r in stats],
        "history": [clean(asdict(p)) for p in history],
        "timeline": seen.record.timeline,
        "cron_drains": seen.record.drains_json(),
        "drain": {
            "calls": drain.calls,
            "totals": dict(drain.totals),
            "pending_left": drain.pending_left,
            "elapsed_s": round(drain.elapsed, 3),
            "completed": drain.completed,
        },
        "n8n": {
            "calls": len(seen.calls),
            "by_status": _by_status(seen.calls),
            "peak_in_flight": seen.journal.get("peak_in_flight", {}),
            "duplicate_sends": {
                "total": len(seen.duplicates),
                "by_cause": by_cause(seen.duplicates),
                "keys": len({d.key for d in seen.duplicates}),
                "examples": [d.to_json() for d in seen.duplicates[:20]],
            },
        },
        "invariants": [i.to_json() for i in seen.invariants],
        "threshold_results": [clean(asdict(t)) for t in threshold_results],
        "passed": passed,
    }
    results_path = out / "results.json"
    write_text_atomic(results_path, json.dumps(Redactor().value(results), indent=2) + "\n")
    table = render_table(stats, threshold_results, seen.invariants)
    return LoadOutcome(passed, results_path, table)


def _by_status(calls: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in calls:
        label = str(c.status) if c.outcome == "answered" else c.outcome
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))
