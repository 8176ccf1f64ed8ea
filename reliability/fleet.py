"""Per-tenant concurrency across the fleet: slots leased in the store, behind the in-process gate.

The in-process limiter (`reliability.quota`) comes first, so a process never asks the store for
more slots than the tenant's limit. Then each call holds one of the tenant's `FleetSlots` (rows
in PostgreSQL, leased until the row's lease ends, so a crashed holder's slots come back by
expiry), and frees it when the call ends.

A slot freed while a call of the same tenant waits in this process goes straight to that call
(the in-process limiter hands its permit over FIFO at the same moment), without two round trips
to the database, as long as the slot was taken less than `handover` ago. That keeps the limit's
cost near zero under load, and the window bounds how long one process can keep a slot from the
others: after it the slot goes back to the store, where every instance competes for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from reliability.clock import Clock
from reliability.logs import log_fields
from reliability.quota import TenantQuotas
from reliability.store.base import FleetSlots

__all__ = ["FleetLimiter"]

_log = logging.getLogger("reliability.dispatch")

POLL_FIRST: Final = 0.025
POLL_MAX: Final = 0.2
"""Seconds between tries at a slot while the tenant is at its limit: from 25 ms, doubling up to
200 ms, jittered so waiters in several processes do not poll in step."""


class FleetLimiter:
    """The tenant slots of one process: taken from the store, handed over, given back."""

    def __init__(
        self,
        slots: FleetSlots,
        clock: Clock,
        quotas: TenantQuotas,
        rng: random.Random,
        *,
        lease: timedelta,
        wait: float,
        handover: float,
    ) -> None:
        self._slots = slots
        self._clock = clock
        self._quotas = quotas
        self._rng = rng
        self._lease = lease
        self._wait = wait
        self._handover = handover
        self._taken: dict[str, float] = {}
        """Held slot tokens and when (monotonic) each was taken from the store."""
        self._spare: dict[str, list[str]] = {}
        """Slots freed for calls of the tenant that wait in this process."""
        self._demands: list[Callable[[str], bool]] = []

    def add_demand(self, demand: Callable[[str], bool]) -> None:
        """Another place where calls of a tenant wait in this process besides the in-process
        limiter (the service's delivery queue): a slot freed while it has rows of the tenant
        is kept for them."""
        self._demands.append(demand)

    def _waiting(self, tenant_id: str) -> bool:
        if self._quotas.waiting(tenant_id):
            return True
        return any(demand(tenant_id) for demand in self._demands)

    async def acquire(self, tenant_id: str, waiting: float) -> str | None:
        """A slot of the tenant's limit (a token), polled for until `wait` seconds have passed
        since `waiting` (the in-process wait counts); None when none came free."""
        spare = self._spare.get(tenant_id)
        if spare:
            return spare.pop()
        limit = self._quotas.limit(tenant_id)
        give_up = waiting + self._wait
        pause = POLL_FIRST
        while True:
            now = self._clock.now()
            token = await self._slots.slot_acquire(
                tenant_id, limit, now=now, until=now + self._lease
            )
            if token is not None:
                self._taken[token] = self._clock.monotonic()
                return token
            left = give_up - self._clock.monotonic()
            if left <= 0:
                return None
            await self._clock.sleep(min(left, pause * (0.5 + self._rng.random())))
            pause = min(2 * pause, POLL_MAX)

    async def release(self, tenant_id: str, token: str) -> None:
        """Hand the slot to a call of the tenant waiting here, or give it back to the store
        (with any spare nobody came for). A failure is logged: the slot expires with its lease."""
        spare = self._spare.setdefault(tenant_id, [])
        age = self._clock.monotonic() - self._taken.get(token, -float("inf"))
        # The caller frees its in-process permit next, which wakes the oldest waiter: that call
        # takes this slot (each earlier spare is already promised to a call woken before).
        waiting = self._waiting(tenant_id)
        if age < self._handover and waiting:
            spare.append(token)
            return
        freed = [token]
        if not waiting:
            freed += spare  # left by waiters that gave up
            spare.clear()
        await self._give_back(tenant_id, freed)

    async def free_spares(self, tenant_id: str) -> None:
        """Give back the tenant's kept slots when no call of it waits here any more (a
        delivery queue calls this when the tenant's burst is over)."""
        spare = self._spare.get(tenant_id)
        if not spare or self._waiting(tenant_id):
            return
        freed = list(spare)
        spare.clear()
        await self._give_back(tenant_id, freed)

    async def _give_back(self, tenant_id: str, freed: list[str]) -> None:
        # Together, so that a store batching releases frees them in one statement.
        await asyncio.gather(*(self._give_one(tenant_id, t) for t in freed))

    async def _give_one(self, tenant_id: str, token: str) -> None:
        self._taken.pop(token, None)
        try:
            await self._slots.slot_release(tenant_id, token)
        except Exception as exc:
            _log.warning(
                "fleet slot not released",
                extra=log_fields(tenant_id=tenant_id, error=type(exc).__name__),
            )
