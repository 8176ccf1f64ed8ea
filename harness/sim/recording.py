"""How the simulator sees the layer: a typed recording store and a breaker listener.

`RecordingStore` is the store as the layer under simulation uses it: one method per store call,
each forwarding to the real store and telling a `StoreWatcher` about the calls the checkers
need (accepted events, dead letters, purges, manual retries). Every call runs through a
`StoreRunner`, which makes a call look the same to the simulation whatever the store: it
completes without letting any other task of the virtual loop run and without virtual time
passing. An SQLite call is like that by itself; a PostgreSQL call runs to completion on an event
loop of its own in another thread while the simulation's loop waits for it. So the order of
events at one virtual instant never depends on the store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from harness.sim.records import BreakerOp
from reliability.breaker import BreakerListener, CircuitBreaker, CircuitOpen, Ticket
from reliability.errors import ErrorCode
from reliability.store import (
    AcceptResult,
    AttemptError,
    DlqCursor,
    DlqEntry,
    DlqFilter,
    DlqPage,
    FleetSlots,
    LedgerRow,
    NewDelivery,
    OutboxRow,
    Store,
    StoreInspector,
)

__all__ = [
    "BreakerRecorder",
    "FleetRecordingStore",
    "RecordingStore",
    "StoreRunner",
    "StoreWatcher",
]

_T = TypeVar("_T")


class StoreRunner:
    """Runs store calls so that none yields to the virtual loop.

    Inline (`io_thread=False`): the store's coroutines never suspend (SQLite), so awaiting them
    is enough. With `io_thread=True` they run on a private event loop in a thread of their own
    (a connection pool and its tasks live there), and the caller blocks until each finishes.
    """

    def __init__(self, *, io_thread: bool) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if io_thread:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="sim-store-io", daemon=True
            )
            self._thread.start()

    async def __call__(self, call: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None:
            return await call
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None


class StoreWatcher(Protocol):
    """What the simulation records about store calls, once each has returned."""

    def accepted(
        self, tenant_id: str, event_id: str, deliveries: Sequence[NewDelivery], result: AcceptResult
    ) -> None: ...

    def dead_lettered(self, entry: DlqEntry) -> None: ...

    def purged(self, now: datetime, count: int) -> None: ...

    def requeued(self, entry_id: str, new_id: str) -> None: ...


class RecordingStore:
    """`Store` and `StoreInspector` for the simulation: the layer's calls go to `store` (which
    a test may have wrapped to break it), the checkers' reads to `inspector` (the real rows)."""

    def __init__(
        self, store: Store, inspector: StoreInspector, run: StoreRunner, watcher: StoreWatcher
    ) -> None:
        self._store = store
        self._inspector = inspector
        self._run = run
        self._watcher = watcher

    # -- lifecycle ------------------------------------------------------------------------------

    async def migrate(self) -> None:
        await self._run(self._store.migrate())

    async def ping(self) -> None:
        await self._run(self._store.ping())

    async def close(self) -> None:
        await self._run(self._store.close())

    # -- the layer's calls ----------------------------------------------------------------------

    async def accept_event(
        self,
        tenant_id: str,
        event_id: str,
        deliveries: Sequence[NewDelivery],
        *,
        now: datetime,
        lease: timedelta | None = None,
    ) -> AcceptResult:
        call = self._store.accept_event(tenant_id, event_id, deliveries, now=now, lease=lease)
        result = await self._run(call)
        if result.new:
            self._watcher.accepted(tenant_id, event_id, deliveries, result)
        return result

    async def purge_processed(self, *, older_than: datetime) -> int:
        return await self._run(self._store.purge_processed(older_than=older_than))

    async def claim_due(self, limit: int, *, now: datetime, lease: timedelta) -> list[OutboxRow]:
        return await self._run(self._store.claim_due(limit, now=now, lease=lease))

    async def claim(self, outbox_id: str, *, now: datetime, lease: timedelta) -> OutboxRow | None:
        return await self._run(self._store.claim(outbox_id, now=now, lease=lease))

    async def renew(self, outbox_id: str, lease_token: str, *, until: datetime) -> bool:
        return await self._run(self._store.renew(outbox_id, lease_token, until=until))

    async def complete(self, outbox_id: str, lease_token: str, *, now: datetime) -> bool:
        return await self._run(self._store.complete(outbox_id, lease_token, now=now))

    async def reschedule(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        error: AttemptError,
        hold_until: datetime | None = None,
    ) -> bool:
        call = self._store.reschedule(
            outbox_id,
            lease_token,
            next_attempt_at=next_attempt_at,
            error=error,
            hold_until=hold_until,
        )
        return await self._run(call)

    async def snooze(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        hold_until: datetime | None = None,
    ) -> bool:
        call = self._store.snooze(
            outbox_id, lease_token, next_attempt_at=next_attempt_at, hold_until=hold_until
        )
        return await self._run(call)

    async def move_to_dlq(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        error_code: ErrorCode,
        message: str,
        now: datetime,
        ttl: timedelta,
        error: AttemptError | None = None,
    ) -> DlqEntry | None:
        call = self._store.move_to_dlq(
            outbox_id,
            lease_token,
            error_code=error_code,
            message=message,
            now=now,
            ttl=ttl,
            error=error,
        )
        entry = await self._run(call)
        if entry is not None:
            self._watcher.dead_lettered(entry)
        return entry

    async def purge_done(self, *, older_than: datetime) -> int:
        return await self._run(self._store.purge_done(older_than=older_than))

    async def dlq_list(
        self,
        flt: DlqFilter,
        *,
        now: datetime,
        after: DlqCursor | None = None,
        limit: int = 50,
    ) -> DlqPage:
        return await self._run(self._store.dlq_list(flt, now=now, after=after, limit=limit))

    async def dlq_get(self, entry_id: str, *, now: datetime) -> DlqEntry | None:
        return await self._run(self._store.dlq_get(entry_id, now=now))

    async def dlq_retry(self, entry_id: str, *, now: datetime) -> str | None:
        new_id = await self._run(self._store.dlq_retry(entry_id, now=now))
        if new_id is not None:
            self._watcher.requeued(entry_id, new_id)
        return new_id

    async def dlq_purge_expired(self, *, now: datetime) -> int:
        count = await self._run(self._store.dlq_purge_expired(now=now))
        self._watcher.purged(now, count)
        return count

    async def dlq_depth(self, *, now: datetime) -> dict[tuple[str, ErrorCode], int]:
        return await self._run(self._store.dlq_depth(now=now))

    # -- the checkers' reads --------------------------------------------------------------------

    async def applied_migrations(self) -> list[int]:
        return await self._run(self._inspector.applied_migrations())

    async def is_processed(self, tenant_id: str, event_id: str) -> bool:
        return await self._run(self._inspector.is_processed(tenant_id, event_id))

    async def ledger_row(self, tenant_id: str) -> LedgerRow | None:
        return await self._run(self._inspector.ledger_row(tenant_id))

    async def outbox_rows(self, *, include_done: bool = False) -> list[OutboxRow]:
        return await self._run(self._inspector.outbox_rows(include_done=include_done))

    async def delivered_keys(self) -> set[str]:
        return await self._run(self._inspector.delivered_keys())

    async def dlq_rows(self) -> list[DlqEntry]:
        return await self._run(self._inspector.dlq_rows())

    async def row_counts(self) -> dict[str, int]:
        return await self._run(self._inspector.row_counts())


class FleetRecordingStore(RecordingStore):
    """One instance's `RecordingStore` in a fleet: it also shares the store's tenant slots
    (`FleetSlots`), so the fleet-wide per-tenant limit is the layer's own. A crashed instance
    frees no slot (its cancelled calls' releases never reach the store, as after `kill -9`):
    its slots come back by expiry."""

    def __init__(
        self,
        store: Store,
        inspector: StoreInspector,
        run: StoreRunner,
        watcher: StoreWatcher,
        *,
        up: Callable[[], bool],
    ) -> None:
        super().__init__(store, inspector, run, watcher)
        if not isinstance(store, FleetSlots):
            raise TypeError(f"{type(store).__name__} has no tenant slots (FleetSlots)")
        self._slots: FleetSlots = store
        self._up = up

    async def slot_acquire(
        self, tenant_id: str, limit: int, *, now: datetime, until: datetime
    ) -> str | None:
        return await self._run(self._slots.slot_acquire(tenant_id, limit, now=now, until=until))

    async def slot_release(self, tenant_id: str, token: str) -> None:
        if self._up():
            await self._run(self._slots.slot_release(tenant_id, token))


class BreakerOps(Protocol):
    """Where a `BreakerRecorder` writes each call into a breaker."""

    def breaker_op(self, op: BreakerOp) -> None: ...


class BreakerRecorder(BreakerListener):
    """Writes down every acquire, refusal, record and release of one dispatcher's breakers."""

    def __init__(self, ops: BreakerOps, instance: int, now: Callable[[], float]) -> None:
        self._ops = ops
        self._instance = instance
        self._now = now

    def acquired(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        self._write(breaker, "acquire", ticket.probe, ticket.generation)

    def refused(self, breaker: CircuitBreaker, error: CircuitOpen) -> None:
        self._write(breaker, "refused")

    def recorded(
        self, breaker: CircuitBreaker, ticket: Ticket, outcome: ErrorCode | None, failed: bool
    ) -> None:
        self._write(breaker, "record", ticket.probe, ticket.generation, outcome, not failed)

    def released(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        self._write(breaker, "release", ticket.probe, ticket.generation)

    def _write(
        self,
        breaker: CircuitBreaker,
        op: str,
        probe: bool = False,
        generation: int = -1,
        outcome: ErrorCode | None = None,
        success: bool = True,
    ) -> None:
        self._ops.breaker_op(
            BreakerOp(
                self._now(), self._instance, breaker.name, op, probe, generation, outcome, success
            )
        )
