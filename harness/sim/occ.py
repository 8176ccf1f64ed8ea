"""The model of the AWS Architecture Blog post "Exponential Backoff And Jitter" (Brooker, 2015).

N clients each want to write one item once, with optimistic concurrency: read the item's
version, send a write carrying it; the write succeeds only if the version is still current, so
of the clients that read the same version only the first writer wins and the rest back off and
start again (a fresh read, a fresh write). Every message crosses a network whose delay is
|Normal(10 ms, 2 ms)|; backoff starts from 5 ms, capped at 2 s. Work is the number of writes the
item received (calls); time is when the last client succeeded. This is the model of the post's
public simulator (`aws-samples/aws-arch-backoff-simulator`, `src/backoff_simulator.py`), here
driven by the service's own `Backoff` strategies on the harness's virtual clock: each message's
arrival is a timer on the virtual event loop, so the loop's clock orders every read and write.

The simulator numbers a client's failures from 1 and waits `backoff(n)` with
`expo(n) = min(cap, base * 2**n)`; the same wait is `Backoff.delay(attempt=n)` here, so the
first retry of every strategy waits what it waits in the post.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from harness.vclock import VirtualClock, run
from reliability.backoff import Backoff, Strategy, backoff

__all__ = ["NET_MEAN_S", "NET_SD_S", "OccPoint", "OccRun", "occ_point", "occ_table"]

NET_MEAN_S: Final = 0.010
NET_SD_S: Final = 0.002
BASE_S: Final = 0.005
CAP_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class OccRun:
    """One run: `clients` clients until every one has written once."""

    calls: int
    completion_s: float


@dataclass(frozen=True, slots=True)
class OccPoint:
    """The mean over `runs` runs of one strategy at one client count."""

    strategy: str
    clients: int
    runs: int
    calls: float
    completion_s: float


class _Contest:
    """One run: the one row every client writes (its version, the writes it received), and its
    clients as timer callbacks on the virtual loop (a coroutine per client would cost several
    times as much per message, and the post's client counts send millions of messages)."""

    __slots__ = (
        "calls",
        "completion_s",
        "done",
        "loop",
        "pending",
        "policy",
        "rng",
        "start",
        "version",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, policy: Backoff, rng: random.Random, clients: int
    ) -> None:
        self.loop, self.policy, self.rng = loop, policy, rng
        self.version = 0
        self.calls = 0
        self.pending = clients
        self.completion_s = 0.0
        self.start = loop.time()
        self.done: asyncio.Future[OccRun] = loop.create_future()
        for _ in range(clients):
            loop.call_at(loop.time() + self._net(), self._read, 0, None)  # the first read travels

    def _net(self) -> float:
        """One crossing of the network: |Normal(10 ms, 2 ms)|."""
        return abs(self.rng.normalvariate(NET_MEAN_S, NET_SD_S))

    def _read(self, failures: int, previous: float | None) -> None:
        """A read arrives at the row; its answer travels back and the write travels out."""
        when = self.loop.time() + self._net() + self._net()
        self.loop.call_at(when, self._write, self.version, failures, previous)

    def _write(self, version: int, failures: int, previous: float | None) -> None:
        """A write arrives: it wins if the version is still current. Its answer travels back; a
        loser backs off, then its next read travels out."""
        self.calls += 1
        now = self.loop.time()
        if version == self.version:
            self.version += 1
            self.completion_s = max(self.completion_s, now + self._net() - self.start)
            self.pending -= 1
            if not self.pending:
                self.done.set_result(OccRun(self.calls, self.completion_s))
            return
        failures += 1
        wait = self.policy.delay(failures, self.rng, previous)
        self.loop.call_at(now + self._net() + wait + self._net(), self._read, failures, wait)


def occ_point(strategy: Strategy, clients: int, runs: int, seed: int) -> OccPoint:
    """Mean calls and completion time of `runs` independent runs, one after another on one
    virtual loop; each run has its own row, its own random stream and starts at its own zero."""
    policy = backoff(strategy, base=BASE_S, cap=CAP_S)

    async def main(clock: VirtualClock) -> list[OccRun]:
        # One run after another: the loop's timer heap then holds one run's clients, not all.
        return [
            await _Contest(
                clock.loop,
                policy,
                random.Random(f"aws-occ:{seed}:{strategy.value}:{clients}:{r}"),
                clients,
            ).done
            for r in range(runs)
        ]

    results = run(main, max_virtual_seconds=86_400.0)
    return OccPoint(
        strategy=strategy.value,
        clients=clients,
        runs=runs,
        calls=statistics.fmean(r.calls for r in results),
        completion_s=statistics.fmean(r.completion_s for r in results),
    )


def occ_table(
    strategies: Sequence[Strategy], clients: Sequence[int], runs: int, seed: int
) -> list[OccPoint]:
    """Every strategy at every client count, strategies in the given order."""
    return [occ_point(s, n, runs, seed) for s in strategies for n in clients]
