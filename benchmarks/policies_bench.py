"""Per-call cost of the policies: our breaker beside pybreaker, and backoff computation.

Both breakers do the same work per call: decide whether the call may go, then record a
success. Medians over repeated batches, side by side in one run.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import pybreaker

from reliability.backoff import Backoff, Strategy
from reliability.breaker import BreakerPolicy, CircuitBreaker
from reliability.clock import SystemClock

BATCH = 20_000
ROUNDS = 15


def per_call_ns(fn: Callable[[], None]) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            fn()
        samples.append((time.perf_counter_ns() - start) / BATCH)
    return statistics.median(samples)


def side_by_side(a: Callable[[], None], b: Callable[[], None]) -> tuple[float, float]:
    """Medians of alternating batches, so warm-up and frequency drift hit both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(ROUNDS):
        for fn, out in ((a, samples[0]), (b, samples[1])):
            start = time.perf_counter_ns()
            for _ in range(BATCH):
                fn()
            out.append((time.perf_counter_ns() - start) / BATCH)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    ours = CircuitBreaker(BreakerPolicy(threshold=10, window=600, recovery=300), SystemClock())

    def ours_call() -> None:
        ticket = ours.acquire()
        ours.on_success(ticket)

    theirs = pybreaker.CircuitBreaker(fail_max=10, reset_timeout=300)

    def noop() -> None:
        return None

    def theirs_call() -> None:
        theirs.call(noop)

    def ours_failure_call() -> None:
        ticket = ours_fail.acquire()
        ours_fail.on_failure(ticket)

    # A window large enough never to open, to time the failure path (deque append + prune).
    ours_fail = CircuitBreaker(
        BreakerPolicy(threshold=10**9, window=0.001, recovery=300), SystemClock()
    )

    per_call_ns(ours_call)  # warm up both before measuring
    per_call_ns(theirs_call)
    a, b = side_by_side(ours_call, theirs_call)
    c = per_call_ns(ours_failure_call)
    print(f"breaker decision+success   ours {a:8.0f} ns/call   pybreaker {b:8.0f} ns/call")
    print(f"  ratio ours/pybreaker {a / b:.2f} (target <= 1.00)")
    print(f"breaker decision+failure   ours {c:8.0f} ns/call")

    rng = random.Random(1)
    for strategy in Strategy:
        backoff = Backoff(strategy, base=1.0, cap=30.0, jitter_factor=0.1)

        def compute(backoff: Backoff = backoff, counter: list[int] = [0]) -> None:  # noqa: B006
            backoff.delay(counter[0] % 8, rng, 2.0)
            counter[0] += 1

        print(f"backoff {strategy.value:13s} {per_call_ns(compute):8.0f} ns/call")


if __name__ == "__main__":
    main()
