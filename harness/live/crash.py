"""Crash consistency on real processes: SIGKILL the service mid-delivery, restart, and audit.

Two service instances share one Postgres schema: instance 0 takes the Stripe intake (and
delivers right after each commit), instance 1 is called by a cron-like loop to drain. A seeded
schedule SIGKILLs one of them (seeded choice) at random points while events arrive and the fake
n8n is slow and failing; each victim is restarted at once. Events whose POST failed are sent
again, as Stripe would. Afterwards everything is drained to completion (rows held by a killed
process come back when their lease passes) and the run is judged: nothing lost (every accepted
event delivered or dead-lettered, nothing pending), duplicate executions at n8n only from
crashes, bounded by them, and always under the delivery's own idempotency key; and every
duplicate send (per idempotency key at the fake n8n) reported with its cause (a kill, a
timeout, a lost or an error answer), one that nothing explains failing the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from harness.fakes.duplicates import DuplicateSend, by_cause
from harness.fakes.stripe import EVENT_TYPES, FakeStripe
from harness.live.checks import (
    Accepted,
    DbSnapshot,
    calls_from_journal,
    check_delivered_reached_n8n,
    check_drained,
    check_duplicates_bounded,
    check_duplicates_explained,
    check_no_double_processing,
    check_nothing_lost,
    duplicate_sends,
    read_snapshot,
)
from harness.live.errors import LoadError, StackError
from harness.live.outbox import DrainSummary, OutboxView, drain_until_idle
from harness.live.processes import Supervisor
from harness.live.stack import Stack, StackConfig, make_tenants
from harness.outputs import write_text_atomic
from harness.verdict import InvariantResult
from reliability.clock import Clock, SystemClock
from reliability.config import DEFAULT_ROUTES, Settings
from reliability.redact import Redactor

__all__ = [
    "CRASH_SCHEMA",
    "CrashConfig",
    "CrashOutcome",
    "KillRecord",
    "kill_schedule",
    "run_crash",
]

CRASH_SCHEMA: Final = "reliability-harness/crash-results"

DEFAULT_FAULTS: Final[dict[str, Any]] = {
    "rules": [
        {
            "path": "*",
            "latency": {"uniform": {"min": 0.05, "max": 0.4}},
            "status": {503: 0.15, 500: 0.05},
        }
    ]
}
"""Slow and failing: 50-400 ms per call, 20% server errors (retried by the dispatcher)."""

_CRASH_SETTINGS: Final = {
    # Timeouts well above the fake's latency, so a repeat at n8n can only come from a crash.
    "N8N_CONNECT_TIMEOUT_MS": "500",
    "N8N_READ_TIMEOUT_MS": "1500",
    "N8N_BASE_DELAY_MS": "100",
    "N8N_MAX_DELAY_MS": "1000",
    "N8N_MAX_RETRIES": "4",
    "N8N_CIRCUIT_BREAKER_THRESHOLD": "1000",
}


@dataclass(frozen=True, slots=True)
class CrashConfig:
    """One crash run. `kills` SIGKILLs at seeded times inside the first 80% of `duration`."""

    database_url: str
    out_dir: Path
    seed: int = 0
    kills: int = 4
    duration: float = 10.0
    rate: float = 30.0
    tenants: int = 3
    faults_file: Path | None = None
    drain_interval: float = 0.5
    resend_timeout: float = 30.0
    final_timeout: float = 120.0
    ready_timeout: float = 30.0
    settings: dict[str, str] = field(default_factory=dict)
    keep_schema: bool = False


@dataclass(frozen=True, slots=True)
class KillRecord:
    at: float
    """Seconds since traffic started."""
    instance: int
    pid: int
    rows_held: int
    """Outbox rows under a lease (claimed, in flight or sleeping out a backoff) at the kill."""
    restart_seconds: float
    wall: datetime
    """When the kill was sent (wall clock): what explains a duplicate at n8n."""


@dataclass(frozen=True, slots=True)
class CrashOutcome:
    passed: bool
    results_path: Path
    table: str


def kill_schedule(
    seed: int, kills: int, duration: float, instances: int
) -> list[tuple[float, int]]:
    """Seeded (time, instance) pairs: times spread over [10%, 80%] of the run, sorted."""
    rng = random.Random(f"{seed}:kills")
    times = sorted(rng.uniform(0.1 * duration, 0.8 * duration) for _ in range(kills))
    return [(t, rng.randrange(instances)) for t in times]


class _Sender:
    """Stripe's side: new events at a steady rate, failed POSTs sent again until answered."""

    def __init__(self, stack: Stack, clock: Clock, seed: int) -> None:
        self._stack = stack
        self._clock = clock
        secrets = {t.tenant_id: t.secret for t in stack.config.tenants}
        self._stripe = FakeStripe(clock=clock, seed=seed, secrets=secrets)
        self._rng = random.Random(f"{seed}:sender")
        self._tenants = sorted(secrets)
        self._types = [t for t in EVENT_TYPES if DEFAULT_ROUTES.get(t)]
        self.accepted: dict[tuple[str, str], Accepted] = {}
        self.unanswered: dict[tuple[str, str], dict[str, Any]] = {}
        self.sent = 0
        self.failed_posts = 0
        self.refused = 0

    def new_event(self) -> tuple[str, dict[str, Any]]:
        tenant = self._rng.choice(self._tenants)
        return tenant, self._stripe.event(self._rng.choice(self._types), tenant=tenant)

    async def post(self, http: httpx.AsyncClient, tenant: str, event: dict[str, Any]) -> None:
        key = (tenant, str(event["id"]))
        self.unanswered[key] = event
        request = self._stripe.signed(event, tenant=tenant)
        self.sent += 1
        try:
            response = await http.post(
                f"{self._stack.service_url(0)}/api/stripe/webhook/{tenant}",
                content=request.body,
                headers=dict(request.headers),
            )
        except httpx.HTTPError:
            self.failed_posts += 1
            return
        if response.status_code == 200:
            del self.unanswered[key]
            self.accepted[key] = Accepted(tenant, key[1], str(event["type"]))
        elif response.status_code >= 500:
            self.failed_posts += 1
        else:
            self.refused += 1
            del self.unanswered[key]


@dataclass(slots=True)
class _Seen:
    """What the crash run observed, for its verdict."""

    kills: list[KillRecord]
    drain: DrainSummary
    journal: dict[str, Any]
    snap: DbSnapshot


def _stack_config(config: CrashConfig, faults: Path) -> StackConfig:
    """Two service instances (one takes the intake, one drains) on one schema."""
    return StackConfig(
        database_url=config.database_url,
        run_dir=config.out_dir / "run",
        tenants=make_tenants(config.tenants, config.seed),
        seed=config.seed,
        faults_file=faults,
        instances=2,
        settings={**_CRASH_SETTINGS, **config.settings},
        ready_timeout=config.ready_timeout,
        keep_schema=config.keep_schema,
        schema_prefix="crash",
    )


async def run_crash(
    config: CrashConfig,
    *,
    clock: Clock | None = None,
    log: Callable[[str], None] | None = None,
) -> CrashOutcome:
    """Run the crash scenario end to end; raises `LoadError` when it cannot be carried out."""
    clock = clock or SystemClock()
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if config.kills < 0 or config.rate <= 0 or config.tenants < 1:
        raise LoadError("--kills must be >= 0, --rate > 0 and --tenants >= 1")
    faults = config.faults_file or config.out_dir / "run" / "crash-faults.json"
    supervisor = Supervisor(config.out_dir / "logs", on_event=say)
    stack = Stack(_stack_config(config, faults), supervisor, clock=clock, log=say)
    try:
        settings = stack.validate()
    except StackError as exc:
        raise LoadError(str(exc)) from None
    if config.faults_file is None:
        faults.parent.mkdir(parents=True, exist_ok=True)
        faults.write_text(json.dumps({"seed": config.seed, **DEFAULT_FAULTS}), encoding="utf-8")
    started = datetime.now(UTC)
    sender = _Sender(stack, clock, config.seed)
    try:
        try:
            await stack.start()
        except StackError as exc:
            raise LoadError(str(exc), exit_code=3) from None
        seen = await _drive(config, stack, sender, clock, say)
    finally:
        await stack.aclose()
    read_timeout = settings.n8n_read_timeout_ms / 1000
    sends = duplicate_sends(seen.journal, [k.wall for k in seen.kills], read_timeout=read_timeout)
    invariants = _verdicts(seen, sender, _in_flight_per_process(settings), sends)
    passed = all(i.passed for i in invariants) and len(seen.kills) == config.kills
    results = _results(config, faults, started, seen, sender, invariants, passed)
    results["duplicates"] = _duplicates_json(sends)
    results_path = config.out_dir / "crash-results.json"
    write_text_atomic(results_path, json.dumps(Redactor().value(results), indent=2) + "\n")
    return CrashOutcome(passed, results_path, _table(seen.kills, invariants))


def _duplicates_json(sends: list[DuplicateSend]) -> dict[str, Any]:
    """Duplicate sends at n8n: how many, per cause, and the first few of them."""
    return {
        "total": len(sends),
        "by_cause": by_cause(sends),
        "keys": len({d.key for d in sends}),
        "examples": [d.to_json() for d in sends[:20]],
    }


async def _drive(
    config: CrashConfig, stack: Stack, sender: _Sender, clock: Clock, say: Callable[[str], None]
) -> _Seen:
    """Traffic with kills, Stripe's retries, then a final drain and the database as left."""
    await stack.reset_fake()
    schedule = kill_schedule(config.seed, config.kills, config.duration, 2)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=1.0)) as http:
        kills = await _traffic(config, stack, sender, http, schedule, clock, say)
        await _resend(config, stack, sender, http, clock)
    say(f"traffic done: {len(sender.accepted)} events accepted, {len(kills)} kills")
    drain = await drain_until_idle(stack, clock, timeout=config.final_timeout, index=1)
    say(f"final drain: {drain.calls} calls, {drain.elapsed:.1f}s, {drain.pending_left} left")
    journal = await stack.journal()
    with OutboxView(stack).connect() as conn:
        snap = read_snapshot(conn)
    return _Seen(kills, drain, journal, snap)


def _in_flight_per_process(settings: Settings) -> int:
    """The most calls one process can have in flight, hence repeat after a kill: every tenant's
    limit, each clamped to `N8N_MAX_CONCURRENCY` (a clamp per tenant, not a cap on the sum)."""
    clamp = settings.n8n_max_concurrency
    return sum(min(settings.tenant(t).concurrency_limit, clamp) for t in settings.tenants)


def _verdicts(
    seen: _Seen, sender: _Sender, max_concurrency: int, sends: list[DuplicateSend]
) -> list[InvariantResult]:
    calls = calls_from_journal(seen.journal)
    accepted = list(sender.accepted.values())
    all_answered = InvariantResult(
        "every event eventually accepted",
        not sender.unanswered and not sender.refused,
        len(accepted) + len(sender.unanswered) + sender.refused,
        f"{len(accepted)} accepted, {len(sender.unanswered)} never answered, "
        f"{sender.refused} refused, {sender.failed_posts} POSTs failed and were sent again",
    )
    crashes = len(seen.kills)
    return [
        all_answered,
        check_nothing_lost(accepted, seen.snap, DEFAULT_ROUTES),
        check_drained(seen.snap, completed=seen.drain.completed, elapsed=seen.drain.elapsed),
        check_no_double_processing(seen.snap, calls, crashes=crashes),
        check_duplicates_bounded(calls, crashes=crashes, max_in_flight=max_concurrency),
        check_duplicates_explained(sends),
        check_delivered_reached_n8n(seen.snap, calls),
    ]


def _results(
    config: CrashConfig,
    faults: Path,
    started: datetime,
    seen: _Seen,
    sender: _Sender,
    invariants: list[InvariantResult],
    passed: bool,
) -> dict[str, Any]:
    calls = calls_from_journal(seen.journal)
    return {
        "schema": CRASH_SCHEMA,
        "schema_version": 1,
        "generated_at": datetime.now(UTC).isoformat(),
        "started_at": started.isoformat(),
        "config": {
            "seed": config.seed,
            "kills": config.kills,
            "duration_s": config.duration,
            "rate": config.rate,
            "tenants": config.tenants,
            "faults": str(faults),
        },
        "kills": [_kill_json(k) for k in seen.kills],
        "events": {
            "sent": sender.sent,
            "accepted": len(sender.accepted),
            "failed_posts": sender.failed_posts,
        },
        "n8n": {
            "calls": len(calls),
            "ok": sum(1 for c in calls if c.succeeded),
            # Reported, not judged here: the fleet-wide per-tenant limit at n8n has its own
            # test on two real instances (tests/live/test_fleet_limit.py).
            "peak_in_flight": seen.journal.get("peak_in_flight", {}),
        },
        "drain": {
            "calls": seen.drain.calls,
            "elapsed_s": round(seen.drain.elapsed, 3),
            "totals": dict(seen.drain.totals),
        },
        "invariants": [i.to_json() for i in invariants],
        "passed": passed,
    }


def _kill_json(k: KillRecord) -> dict[str, Any]:
    return {
        "at": round(k.at, 3),
        "instance": k.instance,
        "pid": k.pid,
        "rows_held": k.rows_held,
        "restart_seconds": round(k.restart_seconds, 3),
    }


def _table(kills: list[KillRecord], invariants: list[InvariantResult]) -> str:
    lines = [f"{'kill at':>8}  {'instance':<10}{'pid':>8}{'rows held':>11}{'restart':>9}"]
    for k in kills:
        role = "intake" if k.instance == 0 else "drain"
        lines.append(
            f"{k.at:>7.2f}s  {role:<10}{k.pid:>8}{k.rows_held:>11}{k.restart_seconds:>8.2f}s"
        )
    lines.append("")
    lines.append(f"{'invariant':<40}result  details")
    for inv in invariants:
        lines.append(f"{inv.name:<40}{'ok' if inv.passed else 'FAILED':<8}{inv.details}")
    return "\n".join(lines)


async def _traffic(
    config: CrashConfig,
    stack: Stack,
    sender: _Sender,
    http: httpx.AsyncClient,
    schedule: list[tuple[float, int]],
    clock: Clock,
    say: Callable[[str], None],
) -> list[KillRecord]:
    """Events at `rate`, drains every `drain_interval`, kills on schedule, for `duration`."""
    began = clock.monotonic()
    stop = asyncio.Event()
    kills: list[KillRecord] = []
    in_flight: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(32)

    async def send_one(tenant: str, event: dict[str, Any]) -> None:
        async with slots:
            await sender.post(http, tenant, event)

    async def produce() -> None:
        count = int(config.duration * config.rate)
        for i in range(count):
            due = began + i / config.rate
            wait = due - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            task = asyncio.create_task(send_one(*sender.new_event()))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async def drainer() -> None:
        while not stop.is_set():
            # The drain instance may be down right now.
            with contextlib.suppress(httpx.HTTPError, StackError):
                await stack.drain(1)
            await clock.sleep(config.drain_interval)

    async def killer() -> None:
        for at, instance in schedule:
            wait = began + at - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            held = _rows_held(stack)
            pid = stack.service_pids()[instance] or 0
            killed_at, wall = clock.monotonic(), clock.now()
            stack.kill_service(instance)
            await stack.start_service(instance)
            record = KillRecord(
                killed_at - began, instance, pid, held, clock.monotonic() - killed_at, wall
            )
            kills.append(record)
            say(f"kill {len(kills)}: instance {instance} (pid {pid}) with {held} rows held")

    drain_task = asyncio.create_task(drainer())
    try:
        await asyncio.gather(produce(), killer())
        if in_flight:
            await asyncio.gather(*in_flight)
    finally:
        stop.set()
        await drain_task
    return kills


async def _resend(
    config: CrashConfig, stack: Stack, sender: _Sender, http: httpx.AsyncClient, clock: Clock
) -> None:
    """Send unanswered events again (fresh signature, as Stripe retries) until all are answered."""
    deadline = clock.monotonic() + config.resend_timeout
    for _ in range(1000):
        if not sender.unanswered or clock.monotonic() > deadline:
            return
        for (tenant, _event_id), event in list(sender.unanswered.items()):
            await sender.post(http, tenant, event)
        if sender.unanswered:
            await clock.sleep(0.2)


def _rows_held(stack: Stack) -> int:
    with OutboxView(stack).connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox WHERE done_at IS NULL AND locked_until > now()"
        ).fetchone()
    return int(row[0]) if row else 0
