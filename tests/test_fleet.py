"""The fleet limiter on virtual time with an in-memory slot table: the limit holds, freed slots
pass to waiting calls within the window, and spares nobody takes go back."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

from harness.vclock import VirtualClock, run
from reliability.fleet import FleetLimiter
from reliability.quota import TenantQuotas


class MemorySlots:
    """`FleetSlots` in a dict: (tenant, slot) -> (token, until)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], tuple[str | None, datetime | None]] = {}
        self.takes = self.frees = 0
        self._n = 0

    async def slot_acquire(
        self, tenant_id: str, limit: int, *, now: datetime, until: datetime
    ) -> str | None:
        self.takes += 1
        for slot in range(limit):
            _, expires = self.rows.get((tenant_id, slot), (None, None))
            if expires is None or expires <= now:
                self._n += 1
                self.rows[(tenant_id, slot)] = (f"tok{self._n}", until)
                return f"tok{self._n}"
        return None

    async def slot_release(self, tenant_id: str, token: str) -> None:
        self.frees += 1
        for key, (held, _) in self.rows.items():
            if key[0] == tenant_id and held == token:
                self.rows[key] = (None, None)

    def held(self, now: datetime) -> int:
        return sum(1 for t, u in self.rows.values() if t is not None and u is not None and u > now)


def _calls(handover: float, calls: int = 8, seconds: float = 1.0) -> tuple[MemorySlots, int]:
    async def main(clock: VirtualClock) -> tuple[MemorySlots, int]:
        slots = MemorySlots()
        quotas = TenantQuotas(clock, lambda _: 2, global_max=20)
        fleet = FleetLimiter(
            slots,
            clock,
            quotas,
            random.Random(1),
            lease=timedelta(seconds=60),
            wait=30.0,
            handover=handover,
        )
        peak = 0

        async def call() -> None:
            nonlocal peak
            waiting = clock.monotonic()
            await quotas.acquire("t", timeout=30.0)
            try:
                token = await fleet.acquire("t", waiting)
                assert token is not None
                peak = max(peak, slots.held(clock.now()))
                try:
                    await clock.sleep(seconds)
                finally:
                    await fleet.release("t", token)
            finally:
                quotas.release("t")

        await asyncio.gather(*(call() for _ in range(calls)))
        assert slots.held(clock.now()) == 0  # every slot went back at the end
        return slots, peak

    return run(main)


def test_without_handover_every_call_takes_and_frees_a_slot() -> None:
    slots, peak = _calls(handover=0.0)
    assert peak <= 2
    assert (slots.takes, slots.frees) == (8, 8)


def test_within_the_window_freed_slots_pass_to_waiting_calls() -> None:
    slots, peak = _calls(handover=5.0)
    assert peak <= 2
    assert (slots.takes, slots.frees) == (2, 2)  # two slots served all eight calls


def test_the_window_bounds_how_long_a_slot_stays_in_one_process() -> None:
    slots, _ = _calls(handover=2.5)  # a slot serves the calls that start within 2.5 s
    assert slots.takes == 4
