"""Overhead of virtual time: loop iterations/s and timer jumps/s on `VirtualEventLoop`.

    .venv/bin/python benchmarks/vclock_bench.py [--n 100000] [--tasks 1000] [--repeat 3]

Medians over `--repeat` runs of: ready-callback iterations (`sleep(0)`) on the virtual loop
beside asyncio's own; one task sleeping 1 s `n` times (one jump per sleep); `--tasks` tasks
sleeping seeded random durations over about a simulated day (the shape of a chaos run), bare,
inside `asyncio.timeout` and inside `asyncio.wait_for` (on 3.11 `wait_for` wraps its awaitable
in a new task, so it costs several loop iterations per call). The chaos target (100,000 events
over 24 h in <= 60 s) leaves ~600 us of wall time per event for everything.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.vclock import VirtualClock, VirtualEventLoop, run  # noqa: E402

DAY = 86_400.0


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def _ready_iterations(factory: Callable[[], asyncio.AbstractEventLoop], n: int) -> None:
    async def spin() -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(spin())


def _serial_sleeps(n: int) -> tuple[int, int]:
    async def main(clock: VirtualClock) -> tuple[int, int]:
        for _ in range(n):
            await clock.sleep(1)
        return clock.loop.iterations, clock.loop.jumps

    return run(main, max_virtual_seconds=None)


def _concurrent_sleeps(tasks: int, n: int, *, guard: str) -> tuple[int, int, float]:
    per_task = max(1, n // tasks)
    mean = DAY / per_task

    async def main(clock: VirtualClock) -> tuple[int, int, float]:
        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(per_task):
                delay = min(rng.expovariate(1 / mean), 5 * mean)
                if guard == "wait_for":
                    await asyncio.wait_for(clock.sleep(delay), 10 * mean)
                elif guard == "timeout":
                    async with asyncio.timeout(10 * mean):
                        await clock.sleep(delay)
                else:
                    await clock.sleep(delay)

        await asyncio.gather(*(worker(seed) for seed in range(tasks)))
        return clock.loop.iterations, clock.loop.jumps, clock.monotonic()

    return run(main, max_virtual_seconds=None)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="sleeps per workload")
    parser.add_argument("--tasks", type=int, default=1_000, help="concurrent tasks")
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload (median)")
    args = parser.parse_args(argv)
    n, repeat = args.n, args.repeat

    plain = _median_time(lambda: _ready_iterations(asyncio.new_event_loop, n), repeat)
    virtual = _median_time(lambda: _ready_iterations(VirtualEventLoop, n), repeat)
    print(f"ready iterations  asyncio loop : {n / plain:>12,.0f} iterations/s")
    print(f"ready iterations  virtual loop : {n / virtual:>12,.0f} iterations/s")

    iterations, jumps = _serial_sleeps(n)
    wall = _median_time(lambda: _serial_sleeps(n), repeat)
    print(
        f"serial sleep(1)   virtual loop : {jumps / wall:>12,.0f} jumps/s, "
        f"{iterations / wall:,.0f} iterations/s ({n:,} sleeps in {wall:.3f} s)"
    )

    for guard in ("none", "timeout", "wait_for"):
        iterations, jumps, simulated = _concurrent_sleeps(args.tasks, n, guard=guard)
        wall = _median_time(
            functools.partial(_concurrent_sleeps, args.tasks, n, guard=guard), repeat
        )
        label = {"none": "sleep", "timeout": "timeout(sleep)", "wait_for": "wait_for(sleep)"}
        print(
            f"{args.tasks} tasks {label[guard]:<15}: {n / wall:>10,.0f} sleeps/s, "
            f"{jumps / wall:,.0f} jumps/s, {iterations / wall:,.0f} iterations/s; "
            f"{simulated / 3600:,.1f} h simulated in {wall:.3f} s (x{simulated / wall:,.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
