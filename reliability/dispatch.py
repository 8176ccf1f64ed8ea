"""Deliver outbox rows to n8n: quota, then breaker, then the call; then carry out the decision.

Two ways in, no timers. `deliver(ids)` runs right after an intake commits and sees its rows
through, sleeping out each backoff in-process while it holds the row's lease (the next attempt
time is written first, so a crash loses nothing: a drain takes the row once the lease passes).
`drain()` is what the external cron calls: it claims due rows and gives each one attempt.

What to do after each try is `reliability.decision.decide()`'s call; the dispatcher makes the
try (`_try`) and carries the decision out in the store (`_apply`), announcing each step as an
event (`reliability.events`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, cast

import httpx

from reliability.breaker import BreakerListener, BreakerRegistry, CircuitOpen, Transition
from reliability.budget import RetryBudget
from reliability.clock import LONGEST, Clock, span
from reliability.config import Settings, TenantPolicy
from reliability.decision import (
    Answered,
    DeadLetter,
    Decision,
    Done,
    Internal,
    Outcome,
    Refused,
    Retry,
    RetryRules,
    Snooze,
    decide,
    retry_rules,
)
from reliability.errors import ErrorCode
from reliability.events import (
    Attempted,
    BreakerChanged,
    DeadLettered,
    Delivered,
    DuplicateSent,
    Event,
    Observer,
    QuotaWaited,
    Retrying,
    Snoozed,
)
from reliability.fleet import FleetLimiter
from reliability.logs import log_fields
from reliability.n8n import N8nClient
from reliability.quota import QuotaExceeded, TenantQuotas
from reliability.store.base import (
    DEFAULT_PROCESSED_RETENTION,
    MAX_ERROR_MESSAGE,
    AttemptError,
    FleetSlots,
    OutboxRow,
    Store,
)

__all__ = ["Dispatcher", "DrainReport", "Settled"]

_log = logging.getLogger("reliability.dispatch")

_HANDOVER = 5.0
"""Seconds after taking a fleet slot during which it may pass to a waiting call of this process
(at most a read timeout, so the slot's lease still outlasts that call). Each slot goes back to
the table, where every instance competes for it, at least this often under load; at one second
the take-and-free round trips cost 12-15% of delivery throughput (benchmarks/fleet_bench.py)."""

_COMPLETE_TRIES = 3
"""Tries at recording a delivery n8n accepted. Each takes a fresh connection from the pool
(which checks it first), so one that PostgreSQL dropped costs a try, not a second send."""


class Settled(StrEnum):
    """How one row's handling ended."""

    DELIVERED = "delivered"
    RETRIED = "retried"
    """An attempt was spent and the row released for a later drain."""
    SNOOZED = "snoozed"
    DEAD_LETTERED = "dead_lettered"
    LOST_LEASE = "lost_lease"
    """Another claimer holds the row now: nothing was written."""
    FAILED = "failed"
    """Handling raised and even recording that failed (the store is down, say): nothing was
    written, and the row comes back to a drain once its lease has passed."""


class _Ran(NamedTuple):
    """How one row's handling ended, and how many unexpected errors it met on the way."""

    settled: Settled
    internal_errors: int


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What one drain call did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    snoozed: int = 0
    dead_lettered: int = 0
    lost_lease: int = 0
    failed: int = 0
    internal_errors: int = 0
    """Unexpected errors met while handling rows, each recorded on its row as an `INTERNAL`
    attempt (or, with `failed`, left to the row's lease)."""
    purged: int = 0
    """Expired dead letters deleted."""
    purged_outbox: int = 0
    """Delivered outbox rows deleted after `RELIABILITY_OUTBOX_RETENTION_HOURS`."""

    @classmethod
    def tally(cls, claimed: int, ran: Iterable[_Ran], purged: tuple[int, int]) -> DrainReport:
        ran = list(ran)
        n = Counter(r.settled for r in ran)
        return cls(
            claimed=claimed,
            delivered=n[Settled.DELIVERED],
            retried=n[Settled.RETRIED],
            snoozed=n[Settled.SNOOZED],
            dead_lettered=n[Settled.DEAD_LETTERED],
            lost_lease=n[Settled.LOST_LEASE],
            failed=n[Settled.FAILED],
            internal_errors=sum(r.internal_errors for r in ran),
            purged=purged[0],
            purged_outbox=purged[1],
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Dispatcher:
    """Delivers outbox rows for every tenant of one process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        observers: Sequence[Observer] = (),
        breaker_listeners: Sequence[BreakerListener] = (),
        instance: str = "dispatcher",
    ) -> None:
        self.settings = settings
        self.instance = instance
        self._store = store
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._observers = list(observers)
        self._n8n = N8nClient(settings, clock, transport=transport)
        read = settings.n8n_read_timeout_ms / 1000
        connect = settings.n8n_connect_timeout_ms / 1000
        # A lease outlives the longest possible call by a margin, so a slow call keeps its row;
        # a crashed holder's rows come back to a drain once it has passed.
        margin = settings.reliability_lease_margin_ms / 1000
        self._lease = span(connect + 2 * read + margin)
        self._read_timeout = read
        transitions = _BreakerEvents(self._emit, clock)
        self.breakers = BreakerRegistry(
            clock,
            lambda t: settings.tenant(t).breaker,
            listeners=[transitions, *breaker_listeners],
        )
        self.quotas = TenantQuotas(
            clock,
            lambda t: settings.tenant(t).concurrency_limit,
            global_max=settings.n8n_max_concurrency,
            on_wait=self._on_quota_wait,
        )
        # The fleet-wide limit, where the store shares slots between processes (both stores do).
        slots = _fleet_slots(store) if settings.reliability_fleet_limit else None
        self._fleet = (
            None
            if slots is None
            else FleetLimiter(
                slots,
                clock,
                self.quotas,
                self._rng,
                lease=self._lease,
                wait=read,
                handover=min(_HANDOVER, read),
            )
        )
        budget = settings.budget_policy
        self.budget = RetryBudget(budget) if budget is not None else None
        self._policies: dict[str, TenantPolicy] = {}
        self._rules: dict[str, RetryRules] = {}
        self._last_purge: float | None = None

    @property
    def lease(self) -> timedelta:
        return self._lease

    @property
    def store(self) -> Store:
        return self._store

    @property
    def call_deadline(self) -> float:
        """Seconds one n8n call may take at most (connect + headers + body)."""
        return self._n8n.deadline

    async def free_spare_slots(self, tenant_id: str) -> None:
        """Give back the fleet slots kept for the tenant's next call, unless one waits."""
        if self._fleet is not None:
            await self._fleet.free_spares(tenant_id)

    def add_demand(self, demand: Callable[[str], bool]) -> None:
        """Tell the fleet limiter where else calls of a tenant wait in this process (a
        delivery queue), so that a freed slot passes to them without a round trip."""
        if self._fleet is not None:
            self._fleet.add_demand(demand)

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    async def aclose(self) -> None:
        await self._n8n.aclose()

    # -- entry points ---------------------------------------------------------------------------

    async def deliver(self, outbox_ids: Sequence[str]) -> None:
        """Claim these rows and see each through: delivered, dead-lettered or handed to drain."""
        await _together([self._deliver_one(i) for i in outbox_ids])

    async def deliver_claimed(self, rows: Sequence[OutboxRow]) -> None:
        """See rows through that the caller already holds (e.g. claimed at intake)."""
        await _together([self._run(r, hold=True) for r in rows])

    async def drain(self, *, batch: int = 100, budget_seconds: float = 10.0) -> DrainReport:
        """Give every due row one attempt, `batch` rows at a time, until none is due or the
        time budget is spent; purge expired dead letters when the last purge is old enough."""
        started = self._clock.monotonic()
        purged = await self._maybe_purge()
        claimed = 0
        settled: list[_Ran] = []
        while self._clock.monotonic() - started < budget_seconds:
            rows = await self._store.claim_due(batch, now=self._clock.now(), lease=self._lease)
            if not rows:
                break
            claimed += len(rows)
            settled += await asyncio.gather(*(self._run(r, hold=False) for r in rows))
            if len(rows) < batch:
                break
        return DrainReport.tally(claimed, settled, purged)

    async def requeue_dead_letter(self, dlq_id: str) -> str | None:
        """Take a DLQ entry back into the outbox (retry_count + 1, same idempotency key).

        Returns the new outbox row's id, or None when the entry is gone, expired or another
        retry took it first. The row is due at once: `deliver([id])` or a drain sends it.
        """
        return await self._store.dlq_retry(dlq_id, now=self._clock.now())

    async def retry_dead_letter(self, dlq_id: str) -> str | None:
        """`requeue_dead_letter`, then deliver the row now; its new outbox id."""
        new_id = await self.requeue_dead_letter(dlq_id)
        if new_id is not None:
            await self.deliver([new_id])
        return new_id

    # -- one row --------------------------------------------------------------------------------

    async def _deliver_one(self, outbox_id: str) -> None:
        row = await self._store.claim(outbox_id, now=self._clock.now(), lease=self._lease)
        if row is not None:
            await self._run(row, hold=True)

    async def _run(self, row: OutboxRow, *, hold: bool) -> _Ran:
        """Try `row` until it is settled; with `hold`, sleep out backoffs in-process.

        Nothing raised while handling one row reaches another (or the drain): an unexpected
        error becomes an `Internal` outcome, decided and recorded like any failed attempt.
        """
        attempt, previous, errors = row.attempt, None, 0
        while True:
            outcome = await self._attempt(row, attempt)
            errors += isinstance(outcome, Internal)
            decision: Decision | None
            try:
                decision = self._decide(row, outcome, attempt, previous)
                settled = await self._apply(row, outcome, decision, hold=hold)
            except Exception as exc:
                if isinstance(outcome, Answered) and outcome.code is None:
                    # n8n has the delivery: recording a retry instead would send it again.
                    # Nothing can be written, so the lease lapses and a drain sends it again.
                    self._internal(row, "recording a delivery", exc)
                    self._duplicate(row, "store_failed")
                    return _Ran(Settled.FAILED, errors + 1)
                decision, settled = await self._record_internal(row, attempt, previous, exc, hold)
                errors += 1
            if settled is not Settled.RETRIED or not hold:
                return _Ran(settled, errors)
            assert isinstance(decision, Retry)
            attempt, previous = decision.attempts, decision.drawn
            await self._clock.sleep(min(decision.delay, LONGEST.total_seconds()))

    async def _attempt(self, row: OutboxRow, attempt: int) -> Outcome:
        """`_try`, with an unexpected error turned into an `Internal` outcome."""
        try:
            return await self._try(row, attempt)
        except Exception as exc:
            return self._internal(row, "calling n8n", exc)

    def _decide(
        self, row: OutboxRow, outcome: Outcome, attempt: int, previous: float | None
    ) -> Decision:
        rules = self._retry_rules(row.tenant_id)
        allowed = self._charge_budget(row.tenant_id, outcome)
        return decide(outcome, attempt, rules, allowed, previous, self._rng)

    async def _record_internal(
        self, row: OutboxRow, attempt: int, previous: float | None, exc: Exception, hold: bool
    ) -> tuple[Decision | None, Settled]:
        """Carrying a decision out raised: record the attempt as `INTERNAL` instead. When that
        raises too, nothing is written and the row's lease brings it back."""
        outcome = self._internal(row, "recording an attempt", exc)
        try:
            decision = self._decide(row, outcome, attempt, previous)
            return decision, await self._apply(row, outcome, decision, hold=hold)
        except Exception as again:
            self._internal(row, "recording an internal error", again)
            return None, Settled.FAILED

    def _duplicate(self, row: OutboxRow, cause: str) -> None:
        self._emit(
            DuplicateSent(
                at=self._clock.now(),
                tenant_id=row.tenant_id,
                outbox_id=row.id,
                idempotency_key=row.idempotency_key,
                cause=cause,
            )
        )

    def _internal(self, row: OutboxRow, step: str, exc: Exception) -> Internal:
        """Log an unexpected error (the log is redacted) and name it for the row: its type only,
        as an exception's text may quote a secret."""
        message = f"{type(exc).__name__} while {step}"
        _log.error(
            "internal error",
            exc_info=exc,
            extra=log_fields(outbox_id=row.id, tenant_id=row.tenant_id, error=message),
        )
        return Internal(message)

    async def _try(self, row: OutboxRow, attempt: int) -> Outcome:
        """One call under the tenant's quotas (this process's, then the fleet's) and breaker,
        or the reason it was not made."""
        waiting = self._clock.monotonic()
        try:
            # No slot within a call's read timeout: the row is snoozed.
            await self.quotas.acquire(row.tenant_id, timeout=self._read_timeout)
        except QuotaExceeded:
            return Refused(ErrorCode.QUOTA)
        try:
            if self._fleet is None:
                called = await self._call(row)
            else:
                slot = await self._fleet.acquire(row.tenant_id, waiting)
                if slot is None:
                    return Refused(ErrorCode.QUOTA)
                try:
                    called = await self._call(row)
                finally:
                    await self._fleet.release(row.tenant_id, slot)
        finally:
            self.quotas.release(row.tenant_id)
        if isinstance(called, Refused):
            return called
        answered, started = called
        self._emit(
            Attempted(
                at=self._clock.now(),
                tenant_id=row.tenant_id,
                workflow=row.workflow,
                outbox_id=row.id,
                idempotency_key=row.idempotency_key,
                attempt=attempt + 1,
                status=answered.status,
                outcome=answered.code,
                duration=self._clock.monotonic() - started,
            )
        )
        return answered

    async def _call(self, row: OutboxRow) -> Refused | tuple[Answered, float]:
        """The call under the tenant's breaker, and when it started; or the breaker's refusal."""
        breaker = self.breakers.get(row.tenant_id)
        try:
            ticket = breaker.acquire()
        except CircuitOpen as exc:
            return Refused(ErrorCode.CIRCUIT_OPEN, exc.retry_in)
        started = self._clock.monotonic()
        try:
            answered = await self._n8n.post(row)
        except BaseException:
            breaker.release(ticket)
            raise
        breaker.record(ticket, answered.code)
        return answered, started

    def _charge_budget(self, tenant_id: str, outcome: Outcome) -> bool:
        """Count a call's outcome in the tenant's retry budget; whether it allows a retry."""
        if self.budget is None or not isinstance(outcome, Answered):
            return True
        if outcome.code is None:
            self.budget.on_success(tenant_id)
            return True
        self.budget.on_failure(tenant_id)
        return self.budget.allows_retry(tenant_id)

    # -- carrying a decision out ----------------------------------------------------------------

    async def _apply(
        self, row: OutboxRow, outcome: Outcome, decision: Decision, *, hold: bool
    ) -> Settled:
        token = row.lease_token or ""
        match decision:
            case Done():
                return await self._complete(row, token, decision)
            case Snooze():
                return await self._snooze(row, token, decision)
            case Retry():
                _, message = _failure(outcome)
                return await self._reschedule(row, token, message, decision, hold=hold)
            case DeadLetter():
                return await self._dead_letter(row, token, _failure(outcome), decision)

    async def _complete(self, row: OutboxRow, token: str, done: Done) -> Settled:
        now = self._clock.now()
        for left in reversed(range(_COMPLETE_TRIES)):
            try:
                completed = await self._store.complete(row.id, token, now=now)
                break
            except Exception:
                if not left:
                    raise
        if not completed:
            # Another claimer holds the row: it sends (or sent) the delivery too.
            self._duplicate(row, "lost_lease")
            return Settled.LOST_LEASE
        self._emit(
            Delivered(
                at=now,
                tenant_id=row.tenant_id,
                workflow=row.workflow,
                outbox_id=row.id,
                idempotency_key=row.idempotency_key,
                attempts=done.attempts,
            )
        )
        return Settled.DELIVERED

    async def _snooze(self, row: OutboxRow, token: str, snooze: Snooze) -> Settled:
        now = self._clock.now()
        until = now + span(snooze.wait)
        if not await self._store.snooze(row.id, token, next_attempt_at=until):
            return Settled.LOST_LEASE
        self._emit(
            Snoozed(
                at=now, tenant_id=row.tenant_id, outbox_id=row.id, until=until, cause=snooze.cause
            )
        )
        return Settled.SNOOZED

    async def _reschedule(
        self, row: OutboxRow, token: str, message: str, retry: Retry, *, hold: bool
    ) -> Settled:
        now = self._clock.now()
        error = AttemptError(retry.attempts, now, retry.cause, message)
        next_at = now + span(retry.delay)
        hold_until = next_at + self._lease if hold else None
        if not await self._store.reschedule(
            row.id, token, next_attempt_at=next_at, error=error, hold_until=hold_until
        ):
            return Settled.LOST_LEASE
        self._emit(
            Retrying(
                at=now,
                tenant_id=row.tenant_id,
                outbox_id=row.id,
                attempt=retry.attempts,
                delay=retry.delay,
                bounds=retry.bounds,
                retry_after=retry.retry_after,
                cause=retry.cause,
                previous=retry.previous,
            )
        )
        return Settled.RETRIED

    async def _dead_letter(
        self, row: OutboxRow, token: str, failure: tuple[ErrorCode, str], dead: DeadLetter
    ) -> Settled:
        # The attempt's own cause: the DLQ code differs when the retry budget refused a retry.
        cause, message = failure
        now = self._clock.now()
        error = AttemptError(dead.attempts, now, cause, message)
        entry = await self._store.move_to_dlq(
            row.id,
            token,
            error_code=dead.code,
            message=error.message[:MAX_ERROR_MESSAGE],
            now=now,
            ttl=self._policy(row.tenant_id).dlq_ttl,
            error=error,
        )
        if entry is None:
            return Settled.LOST_LEASE
        self._emit(
            DeadLettered(
                at=now,
                tenant_id=row.tenant_id,
                workflow=row.workflow,
                outbox_id=row.id,
                dlq_id=entry.id,
                idempotency_key=row.idempotency_key,
                error_code=dead.code,
                attempts=dead.attempts,
            )
        )
        return Settled.DEAD_LETTERED

    async def _maybe_purge(self) -> tuple[int, int]:
        """Expired dead letters, delivered rows past their retention and processed-event ids
        past theirs, when the last purge is old enough: (dead letters, outbox rows) deleted.
        Each purge deletes in `SKIP LOCKED` batches, so instances purging at once never wait
        on each other and count each row once."""
        interval = self.settings.n8n_dlq_cleanup_interval_ms / 1000
        mono = self._clock.monotonic()
        if self._last_purge is not None and mono - self._last_purge < interval:
            return 0, 0
        self._last_purge = mono
        now = self._clock.now()
        purged = await self._store.dlq_purge_expired(now=now)
        retention = span(self.settings.reliability_outbox_retention_hours * 3600)
        done = await self._store.purge_done(older_than=now - retention)
        await self._store.purge_processed(older_than=now - DEFAULT_PROCESSED_RETENTION)
        return purged, done

    def _policy(self, tenant_id: str) -> TenantPolicy:
        policy = self._policies.get(tenant_id)
        if policy is None:
            policy = self._policies[tenant_id] = self.settings.tenant(tenant_id)
        return policy

    def _retry_rules(self, tenant_id: str) -> RetryRules:
        rules = self._rules.get(tenant_id)
        if rules is None:
            rules = self._rules[tenant_id] = retry_rules(self.settings, tenant_id)
        return rules

    # -- events ---------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        for observer in self._observers:
            observer(event)

    def _on_quota_wait(self, tenant_id: str, waited: float) -> None:
        self._emit(QuotaWaited(self._clock.now(), tenant_id, waited))


class _BreakerEvents(BreakerListener):
    """Turns breaker state changes into `BreakerChanged` events, stamped with wall time."""

    def __init__(self, emit: Observer, clock: Clock) -> None:
        self._emit = emit
        self._clock = clock

    def changed(self, transition: Transition) -> None:
        # The transition's time is monotonic; the event's is the wall time it corresponds to.
        at: datetime = self._clock.now() - timedelta(
            seconds=self._clock.monotonic() - transition.at
        )
        self._emit(BreakerChanged(at, transition.name, transition.old, transition.new))


def _fleet_slots(store: Store) -> FleetSlots | None:
    """The store as `FleetSlots` if its class has them (asked of the class: a store proxy may
    answer any attribute)."""
    kind = type(store)
    if callable(getattr(kind, "slot_acquire", None)) and callable(
        getattr(kind, "slot_release", None)
    ):
        return cast("FleetSlots", store)
    return None


def _failure(outcome: Outcome) -> tuple[ErrorCode, str]:
    """A failed try's code and message, for its attempt record."""
    if isinstance(outcome, Internal):
        return ErrorCode.INTERNAL, outcome.message
    assert isinstance(outcome, Answered)
    assert outcome.code is not None
    return outcome.code, outcome.message


async def _together(calls: list[Coroutine[Any, Any, object]]) -> None:
    """Run `calls` concurrently; a lone one (the usual case) runs in the caller's task."""
    if len(calls) == 1:
        await calls[0]
    else:
        await asyncio.gather(*calls)
