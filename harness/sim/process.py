"""The service processes under simulation, and the crashes that kill them.

A `ServiceProcess` holds what one process of the service holds in memory: its dispatcher (with
its breakers, quotas and budget), its intake, and every task it runs. A crash cancels them all
at once, as `kill -9` would: nothing more reaches the store, leases stay behind, calls in
flight at n8n never finish. A restart starts a fresh dispatcher. A `Fleet` is the scenario's
`instances` processes on one store behind a round-robin balancer; each crashes on its own.
Dispatchers are numbered across the fleet in start order (one instance: 1, 2, ... per restart).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from harness.sim.recorder import Recorder
from harness.sim.recording import BreakerRecorder
from harness.sim.records import Records
from harness.sim.scenario import Scenario
from harness.sim.seeds import derive_rng
from harness.sim.trace import Trace
from harness.vclock import VirtualClock
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.intake import Intake
from reliability.store import Store

__all__ = ["DispatcherFactory", "Fleet", "ServiceProcess", "Sim", "TaskSet"]

DispatcherFactory = Callable[..., Dispatcher]
"""Builds a dispatcher from `Dispatcher`'s own arguments."""


@dataclass(frozen=True, slots=True)
class Sim:
    """What every part of one simulated run shares."""

    scenario: Scenario
    seed: int
    settings: Settings
    clock: VirtualClock
    trace: Trace
    records: Records
    recorder: Recorder


class TaskSet:
    """Tasks of one owner, kept until they finish (so they can all be cancelled at once), in
    the order they were spawned: a crash cancels them in that order, whatever their ids."""

    def __init__(self) -> None:
        self.tasks: dict[asyncio.Task[Any], None] = {}

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks[task] = None
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.pop(task, None)

    def running(self) -> list[asyncio.Task[Any]]:
        return [t for t in self.tasks if not t.done()]


class ServiceProcess:
    """One process of the service: up or down, with the dispatcher and tasks of its life."""

    def __init__(
        self,
        sim: Sim,
        store: Store,
        transport: httpx.AsyncBaseTransport,
        build: DispatcherFactory,
        *,
        index: int = 1,
        numbers: Iterator[int] | None = None,
    ) -> None:
        self._sim = sim
        self._store = store
        self._transport = transport
        self._build = build
        self._numbers = numbers if numbers is not None else itertools.count(1)
        self.index = index
        """This process's place in the fleet (1 .. instances): what crashes name."""
        self.up = True
        self.started = 0
        """The current dispatcher's number (across the fleet, in start order)."""
        self.work = TaskSet()
        """Tasks of the process (deliveries, drains): a crash kills them."""
        self.dispatcher = self._start()
        # As the app wires it: new rows are inserted already claimed for immediate delivery.
        self.intake = Intake(sim.settings, store, sim.clock, claim_lease=self.dispatcher.lease)

    @property
    def live(self) -> Dispatcher | None:
        """The dispatcher, while the process is up."""
        return self.dispatcher if self.up else None

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        return self.work.spawn(coro)

    async def kill(self) -> int:
        """Crash: cancel every task of the process; how many were running."""
        self.up = False
        victims = self.work.running()
        for task in victims:
            task.cancel()  # kill -9: no cleanup reaches the store; leases stay behind
        await asyncio.gather(*victims, return_exceptions=True)
        return len(victims)

    def restart(self) -> None:
        """Start again with a fresh dispatcher (fresh breakers, quotas and budget)."""
        self.dispatcher = self._start()
        self.up = True

    def _start(self) -> Dispatcher:
        sim = self._sim
        self.started = n = next(self._numbers)
        dispatcher = self._build(
            sim.settings,
            self._store,
            sim.clock,
            transport=self._transport,
            rng=derive_rng(sim.seed, f"dispatcher:{n}"),
            observers=[sim.recorder.observer(n)],
            breaker_listeners=[BreakerRecorder(sim.recorder, n, sim.recorder.now)],
            instance=f"dispatcher-{n}",
        )
        sim.trace.add("start", f"dispatcher-{n}")
        return dispatcher


class Fleet:
    """The service's processes on one store, reached through a round-robin balancer."""

    def __init__(self, processes: Sequence[ServiceProcess]) -> None:
        self.processes = tuple(processes)
        self._turn = 0

    def pick(self) -> ServiceProcess | None:
        """The next process that is up, in turn (None: all are down)."""
        count = len(self.processes)
        for step in range(count):
            process = self.processes[(self._turn + step) % count]
            if process.up:
                self._turn = (self._turn + step + 1) % count
                return process
        return None

    def tasks(self) -> int:
        """Tasks the processes run."""
        return sum(len(p.work.tasks) for p in self.processes)
