"""The world around the service in a simulated run: cron, crashes, an operator, and observers.

Each part is one loop on virtual time: the external cron calling drain, the crash schedule, the
operator retrying dead letters by hand, the prober looking at dead letters at their expiry,
store snapshots for the nothing-lost check, and the progress ticker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from harness.sim.process import Fleet, ServiceProcess, Sim, TaskSet
from harness.sim.recording import RecordingStore
from harness.sim.records import Checkpoint, DlqLife, DlqProbe, DlqRetry
from reliability.dispatch import DrainReport
from reliability.store import DlqEntry, DlqFilter

__all__ = [
    "TABLE_ROWS_FROM",
    "Crashes",
    "Cron",
    "DlqOperator",
    "Prober",
    "Snapshots",
    "TableRows",
    "ticker",
]

_WHEN_NONZERO: Final = frozenset({"failed", "internal_errors", "purged_outbox"})
"""Drain report fields added after the trace format was fixed: named in a drain's trace line
only when not zero, so a run in which they stay zero keeps its trace hash."""


class Snapshots:
    """Which delivery keys are where in the store, at chosen instants."""

    def __init__(self, sim: Sim, store: RecordingStore) -> None:
        self._sim = sim
        self._store = store

    async def run(self) -> None:
        """Evenly spaced snapshots over the run (`nothing_lost.checkpoints`, default 8)."""
        sim = self._sim
        params = sim.scenario.invariants.get("nothing_lost", {})
        count = int(params.get("checkpoints", 8))
        if count <= 0:
            return
        step = sim.scenario.end / (count + 1)
        for _ in range(count):
            await sim.clock.sleep(step)
            await self.take()

    async def take(self) -> None:
        sim, store = self._sim, self._store
        delivered = await store.delivered_keys()
        pending = await store.outbox_rows()
        dlq = await store.dlq_rows()
        cp = Checkpoint(
            sim.clock.monotonic(),
            len(sim.records.accepted_keys),
            frozenset(delivered),
            frozenset(r.idempotency_key for r in pending),
            frozenset(e.idempotency_key for e in dlq),
        )
        sim.records.checkpoints.append(cp)
        sim.trace.add(
            "checkpoint",
            f"delivered={len(cp.delivered)} pending={len(cp.pending)} dlq={len(cp.dlq)}",
        )


TABLE_ROWS_FROM: Final = 86_400.0
"""Runs at least this long (simulated seconds) count their tables' rows over time: bounded
tables are a claim about days."""
_TABLE_SAMPLES: Final = 96


class TableRows:
    """Every table's row count at evenly spaced instants of a long run (`TABLE_ROWS_FROM`)."""

    def __init__(self, sim: Sim, store: RecordingStore) -> None:
        self._sim = sim
        self._store = store

    async def run(self) -> None:
        sim = self._sim
        step = sim.scenario.end / _TABLE_SAMPLES
        for i in range(_TABLE_SAMPLES + 1):
            await sim.clock.sleep(i * step - sim.clock.monotonic())
            counts = await self._store.row_counts()
            sim.records.table_rows.append((sim.clock.monotonic(), counts))


class Cron:
    """The external scheduler calling the drain endpoint every `cron.interval` seconds (through
    the balancer: one instance per call)."""

    def __init__(self, sim: Sim, fleet: Fleet, store: RecordingStore) -> None:
        self._sim = sim
        self._fleet = fleet
        self._store = store

    async def run(self) -> None:
        sim, cron = self._sim, self._sim.scenario.cron
        while True:
            await sim.clock.sleep(cron.interval)
            service = self._fleet.pick()
            dispatcher = None if service is None else service.live
            if service is None or dispatcher is None:
                sim.trace.add("drain", "skipped (down)")
                continue
            task = service.spawn(dispatcher.drain(batch=cron.batch, budget_seconds=cron.budget))
            try:
                report: DrainReport = await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled() and not service.up:
                    continue  # the process crashed mid-drain
                raise
            sim.records.drains.append((sim.clock.monotonic(), report))
            sim.trace.add("drain", _drain_line(report))
            depth = await self._store.dlq_depth(now=sim.clock.now())
            sim.records.dlq_depth.append((sim.clock.monotonic(), sum(depth.values())))


class Crashes:
    """Kills one service process at each of its crash points and restarts it later."""

    def __init__(self, sim: Sim, service: ServiceProcess, snapshots: Snapshots) -> None:
        self._sim = sim
        self._service = service
        self._snapshots = snapshots

    async def run(self) -> None:
        sim, service = self._sim, self._service
        # Named in the trace only in a fleet, so a single instance's trace keeps its hash.
        who = f" instance={service.index}" if sim.scenario.instances > 1 else ""
        for crash in sim.scenario.crashes:
            if crash.instance != service.index:
                continue
            await sim.clock.sleep(crash.at - sim.clock.monotonic())
            killed = await service.kill()
            sim.trace.add("crash", f"killed={killed}{who}")
            await self._snapshots.take()
            await sim.clock.sleep(crash.restart - sim.clock.monotonic())
            service.restart()
            sim.records.crashes.append((crash.at, crash.restart, killed))
            sim.records.downtime.append((service.index, crash.at, crash.restart))
            sim.trace.add("restart", f"dispatcher-{service.started}")
            await self._snapshots.take()


class DlqOperator:
    """Someone retrying the oldest visible dead letters by hand, as the scenario schedules."""

    def __init__(self, sim: Sim, fleet: Fleet, store: RecordingStore) -> None:
        self._sim = sim
        self._fleet = fleet
        self._store = store

    async def run(self) -> None:
        sim, clock = self._sim, self._sim.clock
        for at, count in sim.scenario.dlq.retries:
            await clock.sleep(at - clock.monotonic())
            service = self._fleet.pick()
            dispatcher = None if service is None else service.live
            if service is None or dispatcher is None:
                sim.trace.add("dlq-retry", "skipped (down)")
                continue
            page = await self._store.dlq_list(DlqFilter(), now=clock.now(), limit=count)
            for entry in page.entries:
                new_id = await dispatcher.requeue_dead_letter(entry.id)
                sim.records.retries.append(
                    DlqRetry(
                        clock.monotonic(),
                        entry.id,
                        entry.tenant_id,
                        entry.idempotency_key,
                        entry.retry_count,
                        new_id,
                    )
                )
                sim.trace.add("dlq-retry", f"{entry.tenant_id} {entry.id} new={new_id}")
                if new_id is not None:
                    service.spawn(dispatcher.deliver([new_id]))


class Prober:
    """Looks for the first `dlq.probes` dead letters 1 ms before their expiry (they must be
    visible) and at it (they must not be). Probes are the harness's tasks: crashes spare them."""

    def __init__(self, sim: Sim, store: RecordingStore, tasks: TaskSet) -> None:
        self._sim = sim
        self._store = store
        self._tasks = tasks
        self._left = sim.scenario.dlq.probes

    def watch(self, entry: DlqEntry, life: DlqLife) -> None:
        if self._left > 0:
            self._left -= 1
            self._tasks.spawn(self._probe(entry, life))

    async def _probe(self, entry: DlqEntry, life: DlqLife) -> None:
        """A stay ended by a manual retry is not probed further: a later stay under the same
        id has its own expiry."""
        clock = self._sim.clock
        for phase, offset in (("before", -0.001), ("at", 0.0)):
            target = entry.expires_at + timedelta(seconds=offset)
            for _ in range(10):
                wait = (target - clock.now()).total_seconds()
                if wait <= 0:
                    break
                await clock.sleep(max(wait, 1e-6))
            if life.retried is not None:
                return
            await self._look(entry, phase)

    async def _look(self, entry: DlqEntry, phase: str) -> None:
        sim, store = self._sim, self._store
        now = sim.clock.now()
        got = await store.dlq_get(entry.id, now=now)
        page = await store.dlq_list(DlqFilter(tenant_id=entry.tenant_id), now=now, limit=10_000)
        listed = any(e.id == entry.id for e in page.entries)
        sim.records.probes.append(
            DlqProbe(
                sim.clock.monotonic(),
                entry.id,
                entry.tenant_id,
                entry.expires_at,
                phase,
                got is not None,
                listed,
            )
        )
        sim.trace.add(
            "dlq-probe",
            f"{entry.tenant_id} {entry.id} {phase} get={got is not None} list={listed}",
        )


async def ticker(sim: Sim, progress: Callable[[float], None] | None) -> None:
    """Tells `progress` the fraction of simulated time done, in hundredths."""
    end, steps = sim.scenario.end, 100
    for i in range(1, steps + 1):
        await sim.clock.sleep(end * i / steps - sim.clock.monotonic())
        if progress is not None:
            progress(i / steps)


def _drain_line(report: DrainReport) -> str:
    fields = report.as_dict().items()
    return " ".join(f"{k}={v}" for k, v in fields if v or k not in _WHEN_NONZERO)
