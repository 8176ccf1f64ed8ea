from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.vclock import VirtualClock, run
from reliability.clock import SystemClock
from reliability.quota import QuotaExceeded, TenantQuotas


def test_limit_is_the_tenants_or_default_never_above_the_global_max() -> None:
    limits = {"big": 50, "small": 2}
    q = TenantQuotas(SystemClock(), lambda t: limits.get(t, 5), global_max=20)
    assert q.limit("big") == 20
    assert q.limit("small") == 2
    assert q.limit("other") == 5


@settings(max_examples=25, deadline=None)
@given(
    limits=st.dictionaries(st.sampled_from("abcde"), st.integers(1, 8), min_size=1),
    global_max=st.integers(1, 6),
    tasks=st.integers(1, 120),
    seed=st.integers(0, 2**16),
)
def test_in_flight_never_exceeds_the_limit_under_many_tasks(
    limits: dict[str, int], global_max: int, tasks: int, seed: int
) -> None:
    async def main(clock: VirtualClock) -> dict[str, int]:
        q = TenantQuotas(clock, lambda t: limits[t], global_max=global_max)
        rng = random.Random(seed)
        tenants = sorted(limits)
        peak: dict[str, int] = dict.fromkeys(tenants, 0)

        async def call(tenant: str, hold: float) -> None:
            async with q.slot(tenant):
                now = q.in_flight(tenant)
                peak[tenant] = max(peak[tenant], now)
                assert now <= q.limit(tenant) <= global_max
                await clock.sleep(hold)

        await asyncio.gather(*(call(rng.choice(tenants), rng.uniform(0, 2)) for _ in range(tasks)))
        for t in tenants:
            assert q.in_flight(t) == 0
        return peak

    peak = run(main)
    for tenant, seen in peak.items():
        assert seen <= min(limits[tenant], global_max)


def test_waiters_are_served_in_arrival_order() -> None:
    async def main(clock: VirtualClock) -> list[int]:
        q = TenantQuotas(clock, lambda t: 1, global_max=5)
        order: list[int] = []

        async def call(i: int) -> None:
            async with q.slot("t"):
                order.append(i)
                await clock.sleep(1.0)

        tasks = []
        for i in range(20):
            tasks.append(asyncio.create_task(call(i)))
            await asyncio.sleep(0)  # let task i queue up before task i+1 arrives
        await asyncio.gather(*tasks)
        return order

    assert run(main) == list(range(20))


def test_a_newcomer_does_not_jump_the_queue_when_a_slot_frees() -> None:
    async def main(clock: VirtualClock) -> list[str]:
        q = TenantQuotas(clock, lambda t: 1, global_max=5)
        order: list[str] = []

        async def call(name: str) -> None:
            async with q.slot("t"):
                order.append(name)

        await q.acquire("t")
        waiting = asyncio.create_task(call("waiter"))
        await asyncio.sleep(0)
        q.release("t")  # hands the slot to the waiter
        await call("newcomer")
        await waiting
        return order

    assert run(main) == ["waiter", "newcomer"]


def test_wait_timeout_raises_a_typed_error_on_the_clock() -> None:
    async def main(clock: VirtualClock) -> tuple[float, QuotaExceeded, int]:
        waits: list[float] = []
        q = TenantQuotas(clock, lambda t: 1, global_max=5, on_wait=lambda t, s: waits.append(s))
        await q.acquire("t")
        start = clock.monotonic()
        with pytest.raises(QuotaExceeded) as info:
            await q.acquire("t", timeout=30.0)
        elapsed = clock.monotonic() - start
        q.release("t")
        await q.acquire("t", timeout=1.0)  # the timed-out waiter left no trace
        assert waits == [pytest.approx(30.0)]
        return elapsed, info.value, q.in_flight("t")

    elapsed, error, in_flight = run(main)
    assert elapsed == pytest.approx(30.0)
    assert error.tenant_id == "t"
    assert error.limit == 1
    assert in_flight == 1


def test_cancelled_waiter_gives_its_slot_on() -> None:
    async def main(clock: VirtualClock) -> int:
        q = TenantQuotas(clock, lambda t: 1, global_max=5)
        await q.acquire("t")
        doomed = asyncio.create_task(q.acquire("t"))
        await asyncio.sleep(0)
        patient = asyncio.create_task(q.acquire("t"))
        await asyncio.sleep(0)
        q.release("t")  # the slot goes to `doomed`...
        doomed.cancel()  # ...which is cancelled before it runs: it must pass the slot on
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await patient
        return q.in_flight("t")

    assert run(main) == 1


def test_tenants_do_not_share_slots() -> None:
    async def main(clock: VirtualClock) -> tuple[int, int]:
        q = TenantQuotas(clock, lambda t: 1, global_max=5)
        await q.acquire("a")
        await q.acquire("b", timeout=0.1)  # would time out if "a" held b's slot
        return q.in_flight("a"), q.in_flight("b")

    assert run(main) == (1, 1)
