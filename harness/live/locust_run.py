"""Locust's run against a live stack: its processes, and what the harness watches meanwhile.

Locust runs headless (with workers, in its own master/worker mode on this machine); while it
runs, the harness samples the service once a second (pending rows, DLQ depth, breakers) and
calls drain as the external cron would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from harness.live.errors import LoadError, StackError
from harness.live.outbox import OutboxView
from harness.live.processes import LOOPBACK, ManagedProcess, Supervisor
from harness.live.stack import Stack, child_env
from reliability.clock import Clock
from reliability.config import DEFAULT_ROUTES

__all__ = ["LocustPlan", "Record", "run_locust"]

_METRIC: Final = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")


@dataclass(frozen=True, slots=True)
class LocustPlan:
    """How to run locust: what `reliability-harness load` was asked for."""

    users: int
    spawn_rate: float
    duration: float
    workers: int
    classes: tuple[str, ...]
    locustfile: Path
    env: Mapping[str, str]
    """The locustfile's settings (`LOADTEST_*`)."""
    prefix: Path
    """Where locust writes its CSV and JSON stats."""
    master_port: int
    cron_drain_interval: float


def locust_env(
    stack: Stack, shares: Mapping[str, float], seed: int, wait: tuple[float, float], accepted: Path
) -> dict[str, str]:
    """The `LOADTEST_*` variables the locustfile reads: secrets, tenants, shares, seed."""
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
        "LOADTEST_SHARES": json.dumps(dict(shares)),
        "LOADTEST_SEED": str(seed),
        "LOADTEST_WAIT": f"{wait[0]}-{wait[1]}",
        "LOADTEST_ACCEPTED_DIR": str(accepted),
    }


async def run_locust(
    plan: LocustPlan,
    stack: Stack,
    supervisor: Supervisor,
    clock: Clock,
    say: Callable[[str], None],
) -> Record:
    """Run locust (master + workers, or one process) to its end; meanwhile sample the service
    once a second and call drain like the external cron does."""
    env = child_env(plan.env)
    base = [sys.executable, "-m", "locust", "-f", str(plan.locustfile)]
    common = ["--host", stack.service_url(), "--loglevel", "WARNING"]
    for i in range(plan.workers):
        worker = ["--worker", "--master-host", LOOPBACK, "--master-port", str(plan.master_port)]
        supervisor.start(
            "locust-worker",
            [*base, *worker, *common, *plan.classes],
            env={**env, "LOADTEST_PROCESS": f"worker{i}"},
        )
    master = supervisor.start(
        "locust",
        [*base, *_master_args(plan), *common, *plan.classes],
        env={**env, "LOADTEST_PROCESS": "master"},
    )
    say(
        f"locust: {plan.users} users, spawn rate {plan.spawn_rate:g}/s, "
        f"{plan.duration:g}s, {plan.workers or 'no'} workers, against {stack.service_url()}"
    )
    record = await _watch(plan, stack, master, clock)
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


def _master_args(plan: LocustPlan) -> list[str]:
    argv = [
        "--headless",
        "-u",
        str(plan.users),
        "-r",
        f"{plan.spawn_rate:g}",
        "-t",
        f"{plan.duration:g}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(plan.prefix),
        "--json-file",
        str(plan.prefix.with_name("locust_stats")),
        "--only-summary",
    ]
    if plan.workers:
        argv += [
            "--master",
            "--master-bind-host",
            LOOPBACK,
            "--master-bind-port",
            str(plan.master_port),
            "--expect-workers",
            str(plan.workers),
            "--expect-workers-max-wait",
            "30",
        ]
    return argv


async def _watch(plan: LocustPlan, stack: Stack, master: ManagedProcess, clock: Clock) -> Record:
    """Sample the service once a second and run the cron drains until locust exits (bounded)."""
    record = Record()
    began = clock.monotonic()
    limit = plan.duration + 30 + (30 if plan.workers else 0) + plan.users / plan.spawn_rate
    next_sample = began
    cron = asyncio.create_task(_cron_drains(stack, clock, plan.cron_drain_interval, record))
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
    return record


@dataclass
class Record:
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


async def _cron_drains(stack: Stack, clock: Clock, interval: float, record: Record) -> None:
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


async def _sample(stack: Stack, http: httpx.AsyncClient | None, t: float) -> dict[str, Any]:
    """One point of the service timeline: outbox pending, DLQ depth, breakers open (from
    `reliability_breaker_state`, 2 = open) and breaker openings so far."""
    point: dict[str, Any] = {"t": t}
    try:
        point["pending"] = OutboxView(stack).pending_count()
        point["dlq"] = OutboxView(stack).dlq_depth()
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
