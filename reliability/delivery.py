"""Immediate delivery in the service: a bounded in-process queue and a fixed pool of workers.

The intake commits a new event's outbox rows already claimed (leased to this process) and hands
them to `DeliveryPool.offer`; the answer goes out without waiting. A fixed set of worker tasks
takes rows from per-tenant queues in turn (round robin over the tenants that have rows and room
under their limit), so a busy tenant cannot starve the others and a tenant at its limit never
ties up a worker: a row is handed to a worker only while fewer than the tenant's limit of its
rows are in flight here. Each row is then seen through by `Dispatcher.deliver_claimed` (quota,
fleet slot, breaker, call, decision), exactly as before.

Rows are not parked for a cron drain while this process lives:

- a row that waited in the queue for more than half its lease has its lease renewed before the
  call (a renewal that fails means another process has the row: it is dropped here);
- when the queue is full, new rows are released at once (due, unleased) instead of queued, and
  once the queue has room again the pool claims due rows itself (`Store.claim_due`) until none
  is left, like a drain would, without waiting for the cron.

Shutdown (`close`): no new rows are taken; calls in flight get `grace` seconds to finish; rows
still queued are released (due at once, unleased) so that any instance's next drain takes them;
a row whose release fails keeps its lease and comes back to a drain when the lease passes. After
a crash nothing is lost either: queued and in-flight rows are leased in the database and come
back to a drain when their lease passes (a call that reached n8n before the crash is sent again
with the same idempotency key).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from reliability.clock import Clock
from reliability.dispatch import Dispatcher
from reliability.logs import log_fields
from reliability.store.base import OutboxRow

__all__ = ["DeliveryPool", "PoolStats"]

_log = logging.getLogger("reliability.delivery")

REFILL_BATCH = 200
"""Rows one refill claim takes at most."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """What the pool holds and has done (for metrics, tests and benchmarks)."""

    queued: int
    in_flight: int
    delivered_rows: int
    released: int
    """Rows given back to the store (queue full, or at shutdown)."""
    refilled: int
    """Rows the pool claimed itself after the queue had been full."""
    renewed: int
    dropped: int
    """Rows whose lease another process had taken while they waited here."""


class DeliveryPool:
    """A bounded queue of claimed rows per tenant and `workers` tasks delivering them."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        clock: Clock,
        *,
        workers: int = 64,
        capacity: int = 10_000,
        limit: Callable[[str], int] | None = None,
    ) -> None:
        if workers < 1 or capacity < 1:
            raise ValueError("workers and capacity must be at least 1")
        self._dispatcher = dispatcher
        self._clock = clock
        self._workers = workers
        self._capacity = capacity
        self._limit = limit if limit is not None else dispatcher.quotas.limit
        self._queues: dict[str, deque[OutboxRow]] = {}
        self._ready: deque[str] = deque()
        """Tenants with queued rows and room under their limit, in turn order."""
        self._is_ready: set[str] = set()
        self._running: dict[str, int] = {}
        self._queued = 0
        self._idle: deque[asyncio.Future[None]] = deque()
        self._tasks: list[asyncio.Future[None]] = []
        self._side: set[asyncio.Future[None]] = set()
        self._refill: asyncio.Task[None] | None = None
        self._spilled = False
        self._releasing = 0
        self._closed = False
        self._quiet: asyncio.Future[None] | None = None
        """Resolved (and cleared) whenever the pool becomes idle."""
        self._counts = dict.fromkeys(
            ("delivered_rows", "released", "refilled", "renewed", "dropped"), 0
        )
        self._half_lease = dispatcher.lease / 2
        dispatcher.add_demand(self.demand)

    # -- the queue ------------------------------------------------------------------------------

    def offer(self, rows: Sequence[OutboxRow]) -> None:
        """Queue claimed rows for delivery; past the capacity they are released to the store."""
        if not self._tasks and not self._closed:
            self._start()
        spill: list[OutboxRow] = []
        for row in rows:
            if self._closed or self._queued >= self._capacity:
                spill.append(row)
                continue
            self._queues.setdefault(row.tenant_id, deque()).append(row)
            self._queued += 1
            self._mark_ready(row.tenant_id)
        if spill and not self._closed:
            self._spilled = True
            self._background(self._spill(spill))

    def stats(self) -> PoolStats:
        return PoolStats(queued=self._queued, in_flight=sum(self._running.values()), **self._counts)

    async def wait_idle(self) -> None:
        """Return once no row is queued or in flight here (tests and embedders: "everything
        handed over so far is seen through")."""
        while self._busy():
            if self._quiet is None:
                self._quiet = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._quiet)

    def demand(self, tenant_id: str) -> bool:
        """Whether another call of the tenant is coming here soon: rows of it queued, or other
        rows of it in flight (asked while one of them frees its fleet slot, which is kept for
        the next call instead of a free and a take; the last call of a burst frees them all)."""
        return bool(self._queues.get(tenant_id)) or self._running.get(tenant_id, 0) > 1

    def _mark_ready(self, tenant_id: str) -> None:
        if tenant_id in self._is_ready or not self._queues.get(tenant_id):
            return
        if self._running.get(tenant_id, 0) >= self._limit(tenant_id):
            return
        self._is_ready.add(tenant_id)
        self._ready.append(tenant_id)
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _take(self) -> OutboxRow | None:
        """The next row in turn, counted as in flight; None when no tenant is ready."""
        if not self._ready:
            return None
        tenant_id = self._ready.popleft()
        self._is_ready.discard(tenant_id)
        queue = self._queues[tenant_id]
        row = queue.popleft()
        self._queued -= 1
        if not queue:
            del self._queues[tenant_id]
        self._running[tenant_id] = self._running.get(tenant_id, 0) + 1
        self._mark_ready(tenant_id)  # back at the end of the turn, if it still has room
        return row

    def _finished(self, tenant_id: str) -> None:
        left = self._running[tenant_id] - 1
        if left:
            self._running[tenant_id] = left
        else:
            del self._running[tenant_id]
            if tenant_id not in self._queues:
                # The tenant's burst is over here: fleet slots kept for its next call go back.
                self._background(self._dispatcher.free_spare_slots(tenant_id))
        self._mark_ready(tenant_id)
        self._kick_refill()
        self._maybe_quiet()

    def _kick_refill(self) -> None:
        """Claim released rows back once they are all released and the queue has room."""
        if (
            self._spilled
            and not self._closed
            and self._refill is None
            and not self._releasing
            and self._queued < self._capacity // 2
        ):
            self._refill = asyncio.ensure_future(self._refill_from_store())

    def _busy(self) -> bool:
        return bool(self._queued or self._running or self._side or self._refill)

    def _maybe_quiet(self) -> None:
        if self._busy() or self._quiet is None:
            return
        quiet, self._quiet = self._quiet, None
        if not quiet.done():
            quiet.set_result(None)

    # -- workers --------------------------------------------------------------------------------

    def _start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._work()) for _ in range(self._workers)]

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            row = self._take()
            if row is None:
                waiter: asyncio.Future[None] = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            try:
                if await self._fresh(row):
                    await self._dispatcher.deliver_claimed([row])
                    self._counts["delivered_rows"] += 1
            except Exception:
                # deliver_claimed isolates each row; this is a bug or the store failing while
                # renewing: the row keeps its lease and a drain picks it up after it.
                _log.exception(
                    "immediate delivery failed; a drain picks the row up after its lease",
                    extra=log_fields(outbox_id=row.id, tenant_id=row.tenant_id),
                )
            finally:
                self._finished(row.tenant_id)

    async def _fresh(self, row: OutboxRow) -> bool:
        """Renew the lease of a row that waited long here; False when another process has it."""
        if row.locked_until is None or row.lease_token is None:
            return True
        now = self._clock.now()
        if row.locked_until - now > self._half_lease:
            return True
        store = self._dispatcher.store
        if await store.renew(row.id, row.lease_token, until=now + self._dispatcher.lease):
            self._counts["renewed"] += 1
            return True
        self._counts["dropped"] += 1
        return False

    # -- giving rows back and taking them again -------------------------------------------------

    async def _spill(self, rows: Sequence[OutboxRow]) -> None:
        self._releasing += 1
        try:
            await self._release(rows)
        finally:
            self._releasing -= 1
            self._kick_refill()
            self._maybe_quiet()

    async def _release(self, rows: Sequence[OutboxRow]) -> None:
        """Make rows due and unleased at once (any drain, or our refill, takes them)."""
        now = self._clock.now()
        store = self._dispatcher.store
        for row in rows:
            if row.lease_token is None:
                continue
            try:
                if await store.snooze(row.id, row.lease_token, next_attempt_at=now):
                    self._counts["released"] += 1
            except Exception as exc:
                _log.warning(
                    "row not released; it comes back when its lease passes",
                    extra=log_fields(outbox_id=row.id, error=type(exc).__name__),
                )

    async def _refill_from_store(self) -> None:
        """Claim due rows ourselves while the queue has room, until none is left."""
        try:
            while not self._closed:
                room = self._capacity - self._queued
                if room <= 0:
                    return  # the next finished row tries again
                batch = min(REFILL_BATCH, room)
                self._spilled = False
                store, lease = self._dispatcher.store, self._dispatcher.lease
                rows = await store.claim_due(batch, now=self._clock.now(), lease=lease)
                self._counts["refilled"] += len(rows)
                self.offer(rows)
                if len(rows) < batch:
                    return
                self._spilled = True  # a full batch: more may be left
        except Exception as exc:
            self._spilled = True
            _log.warning("refill failed", extra=log_fields(error=type(exc).__name__))
        finally:
            self._refill = None
            self._maybe_quiet()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Future[None]) -> None:
        self._side.discard(task)
        self._maybe_quiet()

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self, grace: float) -> None:
        """Stop: let calls in flight finish within `grace` seconds, release queued rows."""
        self._closed = True
        queued = [row for queue in self._queues.values() for row in queue]
        self._queues.clear()
        self._ready.clear()
        self._is_ready.clear()
        self._queued = 0
        if self._refill is not None:
            self._refill.cancel()
        while self._idle:  # idle workers see `_closed` and end
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
        tasks = [*self._tasks, *self._side]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:  # a call past the grace: its row comes back by lease
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._release(queued)
