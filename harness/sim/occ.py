"""The model of the AWS Architecture Blog post "Exponential Backoff And Jitter" (Brooker, 2015).

N clients each want to write one item once, with optimistic concurrency: read the item's
version, send a write carrying it; the write succeeds only if the version is still current, so
of the clients that read the same version only the first writer wins and the rest back off and
start again (a fresh read, a fresh write). Every message crosses a network whose delay is
|Normal(10 ms, 2 ms)|; backoff starts from 5 ms, capped at 2 s. Work is the number of writes the
item received (calls); time is when the last client succeeded. This is the model of the post's
public simulator (`aws-samples/aws-arch-backoff-simulator`, `src/backoff_simulator.py`), here
driven by the service's own `Backoff` strategies on the harness's virtual clock.

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


class _Item:
    """The one row every client writes: a version, and the count of writes it received."""

    __slots__ = ("calls", "version")

    def __init__(self) -> None:
        self.version = 0
        self.calls = 0

    def write(self, version: int) -> bool:
        self.calls += 1
        if version != self.version:
            return False
        self.version += 1
        return True


async def _client(clock: VirtualClock, item: _Item, policy: Backoff, rng: random.Random) -> float:
    """Read, write, back off on a conflict, until the write succeeds; when it did (seconds)."""

    def net() -> float:
        return abs(rng.normalvariate(NET_MEAN_S, NET_SD_S))

    failures = 0
    previous: float | None = None
    await clock.sleep(net())  # the first read travels to the item
    while True:
        version = item.version  # read at the item
        await clock.sleep(net() + net())  # the answer comes back; the write goes out
        ok = item.write(version)
        await clock.sleep(net())  # the write's answer comes back
        if ok:
            return clock.elapsed()
        failures += 1
        previous = policy.delay(failures, rng, previous)
        await clock.sleep(net() + previous)  # back off, then the next read travels


def occ_point(strategy: Strategy, clients: int, runs: int, seed: int) -> OccPoint:
    """Mean calls and completion time of `runs` independent runs (one virtual loop holds them
    all side by side; each run has its own item and its own random stream)."""
    policy = backoff(strategy, base=BASE_S, cap=CAP_S)

    async def main(clock: VirtualClock) -> list[OccRun]:
        async def one(r: int) -> OccRun:
            item = _Item()
            rng = random.Random(f"aws-occ:{seed}:{strategy.value}:{clients}:{r}")
            done = await asyncio.gather(
                *(_client(clock, item, policy, rng) for _ in range(clients))
            )
            return OccRun(item.calls, max(done))

        return list(await asyncio.gather(*(one(r) for r in range(runs))))

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
