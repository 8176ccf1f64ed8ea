"""Run one scenario on virtual time: the real reliability layer against the fakes.

Everything runs on one `VirtualEventLoop` (`harness.vclock`). The parts, each in its module:
the traffic plan (`plan`) sent by Stripe (`traffic`) to the service process (`process`: intake,
dispatcher, tasks, crashes), the world around it (`operators`: cron, an operator retrying dead
letters, probes, snapshots), n8n as the fake's in-process transport, and what is observed
(`recorder`, through a typed `recording` store and breaker listener). All randomness derives
from the seed, by name (`seeds`). Every decision is a line of the `trace`, whose hash is the
run's fingerprint: the same scenario and seed give the same hash, on either store.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from harness.fakes.n8n import DEFAULT_CREDENTIALS, FakeN8n
from harness.fakes.n8n_export import Credentials
from harness.fakes.stripe import FakeStripe
from harness.pgschema import create_schema, drop_schema
from harness.sim.callers import Callers, MisalignedCallers
from harness.sim.figures import RunSize, figures, series
from harness.sim.ledger_guard import SeedLedgerGuard
from harness.sim.operators import (
    TABLE_ROWS_FROM,
    Crashes,
    Cron,
    DlqOperator,
    Prober,
    Snapshots,
    TableRows,
    ticker,
)
from harness.sim.plan import plan_traffic
from harness.sim.process import Fleet, ServiceProcess, Sim, TaskSet
from harness.sim.recorder import Recorder
from harness.sim.recording import FleetRecordingStore, RecordingStore, StoreRunner
from harness.sim.records import Records
from harness.sim.scenario import Scenario
from harness.sim.seeds import derive_rng, uuid4_text
from harness.sim.trace import Trace
from harness.sim.traffic import Traffic
from harness.sim.workflows import sample_workflows
from harness.vclock import DEFAULT_START, VirtualClock, run
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.store import Store, open_store

__all__ = ["Hooks", "Progress", "SimRun", "SimulationError", "simulate"]

Progress = Callable[[float], None]
"""Called with the fraction of simulated time done (0..1)."""


class SimulationError(RuntimeError):
    """A task of the simulation itself failed (a harness bug or a broken hook), not an
    invariant: the run is void."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """Ways for tests to break things on purpose (and prove the checkers notice)."""

    store: Callable[[Store], Store] | None = None
    """Wrap the store the layer uses (e.g. one that loses a row); the checkers still read the
    real rows."""
    dispatcher: Callable[..., Dispatcher] | None = None
    """Build each dispatcher in place of `Dispatcher`, from the same arguments (e.g. with a
    broken random source, or settings with the wrong breaker threshold)."""


@dataclass(slots=True)
class SimRun:
    """One simulated run: its trace hash, records, figures and series."""

    scenario: Scenario
    seed: int
    label: str
    store_url: str
    trace: Trace
    records: Records
    figures: dict[str, float | None]
    series: dict[str, list[dict[str, Any]]]
    simulated_seconds: float
    wall_seconds: float

    @property
    def trace_hash(self) -> str:
        return self.trace.hexdigest


class _Run:
    """One run's setup and teardown around the parts; `main` runs on a fresh virtual loop."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        settings: Settings,
        store_url: str,
        hooks: Hooks,
        progress: Progress | None,
        *,
        keep_trace: bool,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.settings = settings
        self.store_url = store_url
        self.hooks = hooks
        self.progress = progress
        self.trace = Trace(keep=keep_trace)
        self.records = Records(start=DEFAULT_START, settings=settings)
        self.events_generated = 0
        self.callers = Callers()
        self.instance_store: Callable[..., FleetRecordingStore] | None = None
        """Makes each instance's store in a fleet (None: one instance, on the shared store)."""

    async def main(self, clock: VirtualClock) -> None:
        self.trace.bind(clock)
        self.records.start = clock.now()
        recorder = Recorder(clock, self.trace, self.records)
        sim = Sim(
            self.scenario, self.seed, self.settings, clock, self.trace, self.records, recorder
        )
        async with self._store(sim) as store:
            await self._run(sim, store)

    @asynccontextmanager
    async def _store(self, sim: Sim) -> AsyncIterator[RecordingStore]:
        """A migrated store of the run's own (a fresh schema on PostgreSQL), closed after."""
        ids_rng = derive_rng(self.seed, "ids")

        def ids() -> str:
            return uuid4_text(ids_rng.getrandbits(128))

        url = self.store_url
        schema = (
            create_schema(url, "chaos") if url.startswith(("postgresql:", "postgres:")) else None
        )
        runner = StoreRunner(io_thread=schema is not None)
        # The embedded store without fsync: a simulation needs no durability against power
        # loss, and `synchronous=OFF` is most of SQLite's write cost.
        raw = open_store(url, ids=ids, schema=schema, sqlite_synchronous="OFF")
        layer: Store = raw if self.hooks.store is None else self.hooks.store(raw)
        try:
            await runner(raw.migrate())
            store = RecordingStore(layer, raw, runner, sim.recorder)
            if self.scenario.instances > 1:
                # Several instances share the store's tenant slots (the fleet-wide limit), each
                # through a store of its own; a single one runs on its in-process limiter
                # alone, as it always has.
                self.instance_store = partial(FleetRecordingStore, layer, raw, runner, sim.recorder)
            yield store
        finally:
            await runner(raw.close())
            runner.close()
            if schema is not None:
                drop_schema(url, schema)

    async def _run(self, sim: Sim, store: RecordingStore) -> None:
        scenario, clock = self.scenario, sim.clock
        fake = FakeN8n(
            sample_workflows(scenario.n8n_dedupe),
            credentials=Credentials(DEFAULT_CREDENTIALS),
            clock=clock,
            faults=scenario.n8n_faults,
            rng=derive_rng(self.seed, "n8n"),
            journal_capacity=10_000_000,
        )
        stripe = FakeStripe(
            clock=clock,
            seed=derive_rng(self.seed, "stripe-ids").getrandbits(32),
            secrets={
                t: self.settings.tenants[t].stripe_webhook_secrets[0] for t in scenario.tenants
            },
        )
        fleet = self._fleet(sim, store, fake)
        harness_tasks = TaskSet()
        sim.recorder.on_dead_letter = Prober(sim, store, harness_tasks).watch
        snapshots = Snapshots(sim, store)
        plan, specs = plan_traffic(scenario, self.seed, self.records.start)
        self.events_generated = len(specs)
        replay = scenario.comparison is not None and scenario.comparison.kind == "replay"
        traffic = Traffic(sim, fleet, stripe, specs, SeedLedgerGuard() if replay else None)
        workers = [
            asyncio.ensure_future(traffic.run(plan)),
            asyncio.ensure_future(Cron(sim, fleet, store).run()),
            *(asyncio.ensure_future(Crashes(sim, p, snapshots).run()) for p in fleet.processes),
            asyncio.ensure_future(DlqOperator(sim, fleet, store).run()),
            asyncio.ensure_future(snapshots.run()),
            asyncio.ensure_future(ticker(sim, self.progress)),
        ]
        if scenario.end >= TABLE_ROWS_FROM:
            workers.append(asyncio.ensure_future(TableRows(sim, store).run()))
        await clock.sleep(scenario.end - clock.monotonic())
        self.trace.add("end", f"tasks={fleet.tasks()}")
        await self._stop(clock, workers, *(p.work for p in fleet.processes), harness_tasks)
        await self._finish(sim, store, snapshots, fake)

    def _fleet(self, sim: Sim, store: RecordingStore, fake: FakeN8n) -> Fleet:
        """The scenario's instances, each sending to the fake through its own transport."""
        build = self.hooks.dispatcher or Dispatcher
        numbers = itertools.count(1)
        processes: list[ServiceProcess] = []
        for i in range(1, self.scenario.instances + 1):
            own: RecordingStore = store
            if self.instance_store is not None:
                own = self.instance_store(up=lambda i=i: processes[i - 1].up)
            transport = self.callers.transport(fake.transport, i)
            processes.append(ServiceProcess(sim, own, transport, build, index=i, numbers=numbers))
        return Fleet(processes)

    async def _stop(
        self, clock: VirtualClock, workers: Sequence[asyncio.Future[Any]], *owners: TaskSet
    ) -> None:
        """Cancel everything still running; a task that had failed voids the run."""
        tasks = [*workers, *(t for owner in owners for t in list(owner.tasks))]
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [
            o
            for o in outcomes
            if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
        ]
        if failures:
            raise SimulationError(
                f"{self.scenario.file}: a simulation task failed at t={clock.monotonic():.3f}: "
                f"{failures[0]!r}"
            ) from failures[0]

    async def _finish(
        self, sim: Sim, store: RecordingStore, snapshots: Snapshots, fake: FakeN8n
    ) -> None:
        """The last snapshot, the rows manual retries made, and every call the fake n8n saw."""
        r = self.records
        r.end = sim.clock.monotonic()
        await snapshots.take()
        if r.dlq_retried:
            rows = await store.outbox_rows(include_done=True)
            r.retried_rows = [row for row in rows if row.retry_count > 0]
        r.journal = fake.journal.entries()
        try:
            r.callers = self.callers.attribute(r.journal)
        except MisalignedCallers as exc:
            raise SimulationError(f"{self.scenario.file}: {exc}") from exc
        for e in r.journal:
            self.trace.add(
                "n8n",
                f"#{e.seq} t={e.t:.6f} {e.tenant} {e.path} key={e.idempotency_key} "
                f"in_flight={e.in_flight} fault={e.fault} status={e.status} outcome={e.outcome} "
                # Only a Remove Duplicates drop adds a word: runs without dedupe keep their hash.
                f"ran={e.ran}" + (" dropped" if e.dropped else ""),
            )


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    store_url: str | None = None,
    settings: Settings | None = None,
    label: str = "",
    hooks: Hooks | None = None,
    progress: Progress | None = None,
    keep_trace: bool = True,
) -> SimRun:
    """Run `scenario` once on a fresh virtual loop and return what happened."""
    run_seed = scenario.seed if seed is None else seed
    url = store_url or scenario.store_url
    settings = settings or scenario.settings
    sim = _Run(
        scenario,
        run_seed,
        settings,
        url,
        hooks if hooks is not None else Hooks(),
        progress,
        keep_trace=keep_trace,
    )
    wall = time.perf_counter()
    thresholds = gc.get_threshold()
    gc.freeze()  # what exists before the run is not garbage: keep the collector off it
    # Fewer young collections over a large, growing heap, and a middle-aged one only after
    # 1,000 of those: what survives a young collection is almost all records kept to the end.
    gc.set_threshold(50_000, 1_000, 100)
    try:
        run(sim.main, start=DEFAULT_START, max_virtual_seconds=scenario.end + 86_400.0)
    finally:
        gc.set_threshold(*thresholds)
        gc.freeze()  # then thaw: what the run kept joins the oldest generation in one move,
        gc.unfreeze()  # not through a middle-aged collection over all of it
    wall = time.perf_counter() - wall
    size = RunSize(
        events_generated=sim.events_generated,
        trace_lines=sim.trace.count,
        replay_comparison=scenario.comparison is not None and scenario.comparison.kind == "replay",
    )
    return SimRun(
        scenario=scenario,
        seed=run_seed,
        label=label or scenario.name,
        store_url=url,
        trace=sim.trace,
        records=sim.records,
        figures=figures(scenario, sim.records, size),
        series=series(sim.records, settings.n8n_backoff_strategy.value),
        simulated_seconds=sim.records.end,
        wall_seconds=wall,
    )
