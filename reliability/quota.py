"""Per-tenant concurrency quotas: at most `limit` calls in flight per tenant, served FIFO.

A tenant's limit is its own (or the default) and never above the global maximum. A waiter may
give up after a timeout measured on the injected clock, with `QuotaExceeded`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from reliability.clock import Clock

__all__ = ["QuotaExceeded", "TenantQuotas"]


class QuotaExceeded(Exception):
    """No slot came free within the wait timeout."""

    def __init__(self, tenant_id: str, limit: int, waited: float) -> None:
        self.tenant_id = tenant_id
        self.limit = limit
        self.waited = waited
        super().__init__(f"tenant {tenant_id!r}: no slot of {limit} free after {waited:.3f}s")


@dataclass(slots=True)
class _Tenant:
    limit: int
    in_flight: int = 0
    peak: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class TenantQuotas:
    """A FIFO-fair async semaphore per tenant."""

    def __init__(
        self,
        clock: Clock,
        limit_for: Callable[[str], int],
        *,
        global_max: int,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        if global_max < 1:
            raise ValueError(f"global_max must be >= 1, got {global_max}")
        self._clock = clock
        self._limit_for = limit_for
        self._global_max = global_max
        self._on_wait = on_wait
        self._tenants: dict[str, _Tenant] = {}

    def limit(self, tenant_id: str) -> int:
        return self._tenant(tenant_id).limit

    def in_flight(self, tenant_id: str) -> int:
        t = self._tenants.get(tenant_id)
        return 0 if t is None else t.in_flight

    def waiting(self, tenant_id: str) -> int:
        """Calls of the tenant waiting for a slot."""
        t = self._tenants.get(tenant_id)
        return 0 if t is None else sum(1 for w in t.waiters if not w.done())

    def peak(self, tenant_id: str) -> int:
        """The highest in-flight count this tenant has reached."""
        t = self._tenants.get(tenant_id)
        return 0 if t is None else t.peak

    @asynccontextmanager
    async def slot(self, tenant_id: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold one of the tenant's slots for the duration of the block."""
        await self.acquire(tenant_id, timeout=timeout)
        try:
            yield
        finally:
            self.release(tenant_id)

    async def acquire(self, tenant_id: str, *, timeout: float | None = None) -> None:
        t = self._tenant(tenant_id)
        if t.in_flight < t.limit and not t.waiters:
            self._take(t)
            return
        started = self._clock.monotonic()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        t.waiters.append(waiter)
        try:
            if timeout is None:
                await waiter
            else:
                await self._wait_or_time_out(waiter, timeout)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as we gave up: pass it on.
                self.release(tenant_id)
            else:
                waiter.cancel()
                _drop(t.waiters, waiter)
            raise
        finally:
            if self._on_wait is not None:
                self._on_wait(tenant_id, self._clock.monotonic() - started)
        if not waiter.done() or waiter.cancelled():  # timed out
            _drop(t.waiters, waiter)
            raise QuotaExceeded(tenant_id, t.limit, self._clock.monotonic() - started)

    def release(self, tenant_id: str) -> None:
        t = self._tenants[tenant_id]
        while t.waiters:
            waiter = t.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the oldest waiter
                return
        t.in_flight -= 1

    async def _wait_or_time_out(self, waiter: asyncio.Future[None], timeout: float) -> None:
        timer = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not waiter.done():
            waiter.cancel()

    def _take(self, t: _Tenant) -> None:
        t.in_flight += 1
        t.peak = max(t.peak, t.in_flight)

    def _tenant(self, tenant_id: str) -> _Tenant:
        t = self._tenants.get(tenant_id)
        if t is None:
            limit = min(self._limit_for(tenant_id), self._global_max)
            if limit < 1:
                raise ValueError(f"tenant {tenant_id!r}: limit must be >= 1, got {limit}")
            t = self._tenants[tenant_id] = _Tenant(limit=limit)
        return t


def _drop(waiters: deque[asyncio.Future[None]], waiter: asyncio.Future[None]) -> None:
    with suppress(ValueError):
        waiters.remove(waiter)
