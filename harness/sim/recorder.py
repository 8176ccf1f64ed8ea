"""Writes what the layer did into the run's records and trace, as it happens.

The `Recorder` is every observer the simulation attaches: the dispatcher's events (one observer
per dispatcher instance), its breakers' calls (through `BreakerRecorder`) and the store calls
the checkers need (as the `RecordingStore`'s watcher). Each becomes a record and one trace line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from harness.sim.records import BreakerOp, DlqLife, Records
from harness.sim.trace import Trace
from harness.vclock import VirtualClock
from reliability.events import (
    Attempted,
    BreakerChanged,
    DeadLettered,
    Delivered,
    Event,
    QuotaWaited,
    Retrying,
    Snoozed,
)
from reliability.events import Observer as EventObserver
from reliability.store import AcceptResult, DlqEntry, NewDelivery

__all__ = ["Recorder"]

DeadLetterHook = Callable[[DlqEntry, DlqLife], None]


class Recorder:
    """Records and trace lines for one run."""

    def __init__(self, clock: VirtualClock, trace: Trace, records: Records) -> None:
        self._clock = clock
        self._trace = trace
        self._records = records
        self._lives: dict[str, DlqLife] = {}
        self.on_dead_letter: DeadLetterHook | None = None
        """Called with each new stay in the DLQ (the prober looks at some of them)."""

    # -- the dispatcher's events ----------------------------------------------------------------

    def observer(self, instance: int) -> EventObserver:
        """The observer for dispatcher `instance`: its events, tagged with who emitted them."""

        def observe(event: Event) -> None:
            self._records.events.append((self._clock.monotonic(), instance, event))
            self._trace_event(event)

        return observe

    def _trace_event(self, event: Event) -> None:
        add, seconds = self._trace.add, self._records.seconds
        match event:
            case Attempted():
                add(
                    "attempt",
                    f"{event.tenant_id} {event.outbox_id} n={event.attempt} "
                    f"status={event.status} outcome={event.outcome} dur={event.duration!r}",
                )
            case Delivered():
                add("delivered", f"{event.tenant_id} {event.outbox_id} n={event.attempts}")
            case Retrying():
                add(
                    "retry",
                    f"{event.tenant_id} {event.outbox_id} n={event.attempt} "
                    f"delay={event.delay!r} bounds={event.bounds[0]!r},{event.bounds[1]!r} "
                    f"retry_after={event.retry_after!r} cause={event.cause}",
                )
            case Snoozed():
                until = seconds(event.until)
                add(
                    "snooze", f"{event.tenant_id} {event.outbox_id} until={until:.6f} {event.cause}"
                )
            case DeadLettered():
                add(
                    "dead",
                    f"{event.tenant_id} {event.outbox_id} dlq={event.dlq_id} "
                    f"code={event.error_code} attempts={event.attempts}",
                )
            case BreakerChanged():
                at = seconds(event.at)
                add("breaker", f"{event.tenant_id} {event.old}->{event.new} at={at:.6f}")
            case QuotaWaited():
                add("quota-wait", f"{event.tenant_id} waited={event.waited!r}")

    # -- breakers -------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock.monotonic()

    def breaker_op(self, op: BreakerOp) -> None:
        self._records.breaker_ops.append(op)
        self._trace.add(
            f"cb-{op.op}", f"{op.tenant} i={op.instance} probe={op.probe} gen={op.generation}"
        )

    # -- store calls (the RecordingStore's watcher) ---------------------------------------------

    def accepted(
        self, tenant_id: str, event_id: str, deliveries: Sequence[NewDelivery], result: AcceptResult
    ) -> None:
        t = self._clock.monotonic()
        r = self._records
        for outbox_id, d in zip(result.outbox_ids, deliveries, strict=True):
            r.accepted_keys[d.idempotency_key] = (tenant_id, event_id, t)
            r.outbox_keys[outbox_id] = d.idempotency_key

    def dead_lettered(self, entry: DlqEntry) -> None:
        r = self._records
        r.dlq_entries[entry.id] = entry
        r.dlq_written.append(entry)
        life = DlqLife(
            entry.id, entry.tenant_id, self._clock.monotonic(), r.seconds(entry.expires_at)
        )
        self._lives[entry.id] = life
        r.dlq_lives.append(life)
        if self.on_dead_letter is not None:
            self.on_dead_letter(entry, life)

    def purged(self, now: datetime, count: int) -> None:
        self._records.purges.append((self._clock.monotonic(), now, count))
        self._trace.add("dlq-purge", f"count={count}")

    def requeued(self, entry_id: str, new_id: str) -> None:
        now = self._clock.monotonic()
        r = self._records
        r.dlq_retried[entry_id] = now
        life = self._lives.get(entry_id)
        if life is not None and life.retried is None:
            life.retried = now
        entry = r.dlq_entries.get(entry_id)
        if entry is not None:
            r.outbox_keys[new_id] = entry.idempotency_key
