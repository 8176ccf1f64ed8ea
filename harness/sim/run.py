"""The deterministic simulator: the real reliability layer against the fakes, on virtual time.

Everything runs on one `VirtualEventLoop`. The fake Stripe builds and signs events that go
straight to `Intake.handle` (no HTTP inside the simulation); accepted events are handed to
`Dispatcher.deliver` as a background task, as the app does; the cron drains on its cadence; n8n
is the fake's in-process transport. All randomness derives from the seed, by name. Every
decision (intake answers, dispatcher events, breaker calls, calls at the fake, crashes, drains,
DLQ probes) is appended to the trace as one canonical line; the SHA-256 of the trace is the
trace hash: the same scenario and seed give the same hash, byte for byte, on the embedded store.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import hashlib
import heapq
import json
import math
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, TextIO, cast

import psycopg
from psycopg import sql

from harness.fakes.journal import JournalEntry
from harness.fakes.n8n import FakeN8n
from harness.fakes.stripe import FakeStripe, sign
from harness.sim.scenario import Scenario
from harness.vclock import DEFAULT_START, VirtualClock, run
from reliability.backoff import Strategy
from reliability.breaker import BreakerListener, CircuitBreaker, CircuitOpen, Ticket
from reliability.config import Settings
from reliability.dispatch import Dispatcher, DrainReport
from reliability.errors import ErrorCode
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
from reliability.intake import Intake, IntakeCode
from reliability.signature import SignatureError, verify
from reliability.store import (
    DlqEntry,
    DlqFilter,
    NewDelivery,
    OutboxRow,
    PostgresStore,
    SqliteStore,
    Store,
    StoreInspector,
    open_store,
)

_ID_SENTINEL: Final = "evt_\u2400sentinel\u2400"
_CREATED_SENTINEL: Final = -7_316_204_593
_ID_MARK: Final = json.dumps(_ID_SENTINEL)
_CREATED_MARK: Final = str(_CREATED_SENTINEL)

__all__ = [
    "BreakerOp",
    "Checkpoint",
    "DlqLife",
    "DlqProbe",
    "DlqRetry",
    "Hooks",
    "Progress",
    "Records",
    "SeedLedgerGuard",
    "Send",
    "SimRun",
    "SimulationError",
    "Trace",
    "derive_rng",
    "simulate",
    "uuid4_text",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=DEFAULT_START.tzinfo)
_BAD_KINDS: Final = ("tampered", "no-v1", "unparsable", "missing")
_MAX_SERIES: Final = 2000
_RETRIED: Final = frozenset({"delivery", "duplicate", "resigned", "retry", "burst"})
"""Requests the fake Stripe sends again when the service did not answer (not forgeries)."""


def derive_rng(seed: int, name: str) -> random.Random:
    """An independent RNG for one part of the simulation: `Random(sha256(f"{seed}:{name}"))`."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class SimulationError(RuntimeError):
    """A task of the simulation itself failed (a harness bug or a broken hook), not an
    invariant: the run is void."""


# --- the trace -------------------------------------------------------------------------------


class Trace:
    """Canonical lines `<t> <kind> <fields...>`, hashed as they come; kept for counterexamples."""

    def __init__(self, clock: VirtualClock | None = None, *, keep: bool = True) -> None:
        self._clock = clock
        self._hash = hashlib.sha256()
        self._keep = keep
        self._pending: list[str] = []  # lines not hashed yet: hashing in batches is cheaper
        self.lines: list[str] = []
        self.count = 0

    def bind(self, clock: VirtualClock) -> None:
        self._clock = clock

    def add(self, kind: str, text: str) -> None:
        t = self._clock.monotonic() if self._clock is not None else 0.0
        line = f"{t:.6f} {kind} {text}"
        self.count += 1
        pending = self._pending
        pending.append(line)
        if len(pending) >= 4096:
            self._flush()
        if self._keep:
            self.lines.append(line)

    def _flush(self) -> None:
        """Hash the pending lines: the digest equals hashing `line + "\\n"` one at a time."""
        if self._pending:
            self._pending.append("")
            self._hash.update("\n".join(self._pending).encode())
            self._pending = []

    @property
    def hexdigest(self) -> str:
        self._flush()
        return self._hash.hexdigest()

    def grep(self, *needles: str, limit: int = 20) -> list[str]:
        """The last `limit` lines mentioning every needle (the story of one delivery)."""
        found = [ln for ln in self.lines if all(n in ln for n in needles)]
        return found[-limit:]


# --- what the checkers read -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """One request of the fake Stripe and the intake's answer."""

    t: float
    tenant: str
    event_id: str
    kind: str
    """delivery, duplicate, burst, replay, resigned, retry, bad:<kind>."""
    status: int | None
    """None: the service was down (crashed), nothing answered."""
    code: str
    outbox_ids: tuple[str, ...] = ()
    seed_guard: str = ""
    """The seed's ledger-only guard's verdict for this request (replay comparison only)."""


@dataclass(frozen=True, slots=True)
class BreakerOp:
    """One call into a tenant's breaker, as the dispatcher made it."""

    t: float
    instance: int
    tenant: str
    op: str
    """acquire, refused, record, release."""
    probe: bool = False
    generation: int = -1
    outcome: ErrorCode | None = None
    success: bool = True


@dataclass(frozen=True, slots=True)
class DlqProbe:
    t: float
    dlq_id: str
    tenant: str
    expires_at: datetime
    phase: str
    """before (1 ms before expires_at) or at (exactly expires_at)."""
    visible_get: bool
    visible_list: bool


@dataclass(frozen=True, slots=True)
class DlqRetry:
    t: float
    dlq_id: str
    tenant: str
    idempotency_key: str
    retry_count: int
    new_outbox_id: str | None


@dataclass(slots=True)
class DlqLife:
    """One stay in the DLQ: written at `created`, visible until `expires` (seconds since the
    start), ended early by a manual retry at `retried` (None: it stayed until purged)."""

    dlq_id: str
    tenant: str
    created: float
    expires: float
    retried: float | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The store at one instant: which delivery keys are where."""

    t: float
    accepted: int
    """How many deliveries intakes had written when the snapshot was taken."""
    delivered: frozenset[str]
    pending: frozenset[str]
    dlq: frozenset[str]


@dataclass(slots=True)
class Records:
    """Everything observed during one run, in order, for the invariant checkers."""

    start: datetime
    settings: Settings
    sends: list[Send] = field(default_factory=list)
    events: list[tuple[float, int, Event]] = field(default_factory=list)
    """(t, dispatcher instance, event)."""
    breaker_ops: list[BreakerOp] = field(default_factory=list)
    accepted_keys: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    """Delivery key -> (tenant, event id, accepted at) for every outbox row an intake wrote."""
    outbox_keys: dict[str, str] = field(default_factory=dict)
    """Outbox id -> its delivery key (intake rows and manual DLQ retries)."""
    dlq_entries: dict[str, DlqEntry] = field(default_factory=dict)
    """DLQ id -> the entry as last written (a retried delivery that fails again reuses its id)."""
    dlq_lives: list[DlqLife] = field(default_factory=list)
    """Every stay of a delivery in the DLQ, in order."""
    dlq_retried: dict[str, float] = field(default_factory=dict)
    """DLQ id -> when it was last taken back into the outbox by hand."""
    purges: list[tuple[float, datetime, int]] = field(default_factory=list)
    drains: list[tuple[float, DrainReport]] = field(default_factory=list)
    crashes: list[tuple[float, float, int]] = field(default_factory=list)
    """(crashed at, restarted at, deliveries killed)."""
    probes: list[DlqProbe] = field(default_factory=list)
    retries: list[DlqRetry] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    journal: tuple[JournalEntry, ...] = ()
    retried_rows: list[OutboxRow] = field(default_factory=list)
    """Outbox rows made by manual DLQ retries, as the store holds them at the end."""
    dlq_depth: list[tuple[float, int]] = field(default_factory=list)
    end: float = 0.0

    def seconds(self, when: datetime) -> float:
        return (when - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Hooks:
    """Ways for tests to break things on purpose (and prove the checkers notice)."""

    store: Callable[[Store], Store] | None = None
    """Wrap the store (e.g. one that loses a row)."""
    dispatcher: Callable[..., Dispatcher] | None = None
    """Build each dispatcher in place of `Dispatcher`, from the same arguments (e.g. with a
    broken random source, or settings with the wrong breaker threshold)."""


@dataclass(slots=True)
class SimRun:
    """One simulated run: its trace hash, records, figures and series."""

    scenario: Scenario
    seed: int
    label: str
    store_url: str
    trace: Trace
    records: Records
    figures: dict[str, float]
    series: dict[str, list[dict[str, Any]]]
    simulated_seconds: float
    wall_seconds: float

    @property
    def trace_hash(self) -> str:
        return self.trace.hexdigest


Progress = Callable[[float], None]
"""Called with the fraction of simulated time done (0..1)."""


# --- the seed's replay guard, for the comparison ----------------------------------------------


class SeedLedgerGuard:
    """The seed's replay protection, faithfully: one `stripe_event_ledger` row per tenant.

    The seed keeps only `last_processed_event_id` and `last_processed_at` per tenant. An event
    is taken as already processed when its id equals the last one, or when it was created
    before the last processed event (the row's notion of "already past this point"); otherwise
    it is processed and becomes the last. Stripe does not order deliveries, so an older
    legitimate event arriving late is dropped, and an earlier event replayed once another came
    in between (within the same second of `created`) is processed again.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, int]] = {}

    def admit(self, tenant_id: str, event_id: str, created: int) -> bool:
        last = self._last.get(tenant_id)
        if last is not None and (event_id == last[0] or created < last[1]):
            return False
        self._last[tenant_id] = (event_id, created)
        return True


# --- plumbing ---------------------------------------------------------------------------------


class _ObservedStore:
    """The store as the layer sees it, with the calls the checkers need recorded on the way.

    On Postgres each call holds virtual time still (`real_io`) and runs alone, so the
    interleaving of tasks does not depend on how fast the server answers.
    """

    def __init__(self, inner: Store, sim: _Sim, *, real_io: bool) -> None:
        self._inner = inner
        self._sim = sim
        self._real_io = real_io
        self._lock = asyncio.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr
        after = getattr(self._sim, f"_after_{name}", None)
        sim = self._sim
        if after is None and not self._real_io:
            setattr(self, name, attr)  # nothing to record or serialise: call it straight
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._real_io:
                async with self._lock:
                    with sim.clock.real_io():
                        result = await attr(*args, **kwargs)
            else:
                result = await attr(*args, **kwargs)
            if after is not None:
                after(result, *args, **kwargs)
            return result

        setattr(self, name, call)  # found on the instance from now on, without __getattr__
        return call


class _BreakerRecorder(BreakerListener):
    """Writes down every acquire/refusal/record/release of one dispatcher's breakers."""

    def __init__(self, sim: _Sim, instance: int) -> None:
        self._sim = sim
        self._instance = instance

    def acquired(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        self._sim.breaker_op(
            self._instance, breaker.name, "acquire", ticket.probe, ticket.generation
        )

    def refused(self, breaker: CircuitBreaker, error: CircuitOpen) -> None:
        self._sim.breaker_op(self._instance, breaker.name, "refused")

    def recorded(
        self, breaker: CircuitBreaker, ticket: Ticket, outcome: ErrorCode | None, failed: bool
    ) -> None:
        self._sim.breaker_op(
            self._instance,
            breaker.name,
            "record",
            ticket.probe,
            ticket.generation,
            outcome,
            not failed,
        )

    def released(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        self._sim.breaker_op(
            self._instance, breaker.name, "release", ticket.probe, ticket.generation
        )


class _Planned(NamedTuple):
    """One send, ordered by `(t, seq)` on the heap: `seq` is unique, so ties go no further."""

    t: float
    seq: int
    tenant: str
    event: int
    kind: str
    attempt: int = 0
    stamp: int | None = None
    """The signature's `t` for a replayed captured request (else: signed at send time)."""


@dataclass(frozen=True, slots=True)
class _EventSpec:
    tenant: str
    type: str
    created: int
    id: str


class _Sim:
    """One run's state; `simulate()` builds it and runs `main` on a fresh virtual loop."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        settings: Settings,
        store_url: str,
        hooks: Hooks,
        progress: Progress | None,
        *,
        keep_trace: bool,
        seed_guard: bool,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.settings = settings
        self.store_url = store_url
        self.hooks = hooks
        self.progress = progress
        self.trace = Trace(keep=keep_trace)
        self.records = Records(start=DEFAULT_START, settings=settings)
        self.clock: VirtualClock
        self.up = True
        self.instance = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.seed_guard = SeedLedgerGuard() if seed_guard else None
        self._probes_left = scenario.dlq.probes
        self._background: set[asyncio.Task[Any]] = set()
        self._dispatcher: Dispatcher | None = None
        self._templates: dict[tuple[str, str], str] = {}
        self._lives: dict[str, DlqLife] = {}

    def _crashed(self) -> bool:
        return not self.up

    # -- recording hooks ----------------------------------------------------------------------

    def now_t(self) -> float:
        return self.clock.monotonic()

    def observe(self, event: Event) -> None:
        t = self.clock.monotonic()
        self.records.events.append((t, self.instance, event))
        match event:
            case Attempted():
                self.trace.add(
                    "attempt",
                    f"{event.tenant_id} {event.outbox_id} n={event.attempt} "
                    f"status={event.status} outcome={event.outcome} dur={event.duration!r}",
                )
            case Delivered():
                self.trace.add(
                    "delivered", f"{event.tenant_id} {event.outbox_id} n={event.attempts}"
                )
            case Retrying():
                self.trace.add(
                    "retry",
                    f"{event.tenant_id} {event.outbox_id} n={event.attempt} "
                    f"delay={event.delay!r} bounds={event.bounds[0]!r},{event.bounds[1]!r} "
                    f"retry_after={event.retry_after!r} cause={event.cause}",
                )
            case Snoozed():
                until = self.records.seconds(event.until)
                self.trace.add(
                    "snooze", f"{event.tenant_id} {event.outbox_id} until={until:.6f} {event.cause}"
                )
            case DeadLettered():
                self.trace.add(
                    "dead",
                    f"{event.tenant_id} {event.outbox_id} dlq={event.dlq_id} "
                    f"code={event.error_code} attempts={event.attempts}",
                )
            case BreakerChanged():
                at = self.records.seconds(event.at)
                self.trace.add("breaker", f"{event.tenant_id} {event.old}->{event.new} at={at:.6f}")
            case QuotaWaited():
                self.trace.add("quota-wait", f"{event.tenant_id} waited={event.waited!r}")

    def breaker_op(
        self,
        instance: int,
        tenant: str,
        op: str,
        probe: bool = False,
        generation: int = -1,
        outcome: ErrorCode | None = None,
        success: bool = True,
    ) -> None:
        t = self.clock.monotonic()
        self.records.breaker_ops.append(
            BreakerOp(t, instance, tenant, op, probe, generation, outcome, success)
        )
        self.trace.add(f"cb-{op}", f"{tenant} i={instance} probe={probe} gen={generation}")

    # store observers (called by _ObservedStore after the inner call returns)

    def _after_accept_event(
        self,
        result: Any,
        tenant_id: str,
        event_id: str,
        deliveries: Sequence[NewDelivery],
        **_: Any,
    ) -> None:
        if result.new:
            t = self.clock.monotonic()
            for outbox_id, d in zip(result.outbox_ids, deliveries, strict=True):
                self.records.accepted_keys[d.idempotency_key] = (tenant_id, event_id, t)
                self.records.outbox_keys[outbox_id] = d.idempotency_key

    def _after_move_to_dlq(self, entry: DlqEntry | None, *args: Any, **kwargs: Any) -> None:
        if entry is None:
            return
        r = self.records
        r.dlq_entries[entry.id] = entry
        life = DlqLife(
            entry.id, entry.tenant_id, self.clock.monotonic(), r.seconds(entry.expires_at)
        )
        self._lives[entry.id] = life
        r.dlq_lives.append(life)
        if self._probes_left > 0:
            self._probes_left -= 1
            self._spawn_background(self._probe(entry, life))

    def _after_dlq_purge_expired(self, count: int, *, now: datetime) -> None:
        self.records.purges.append((self.clock.monotonic(), now, count))
        self.trace.add("dlq-purge", f"count={count}")

    def _after_dlq_retry(self, new_id: str | None, entry_id: str, **_: Any) -> None:
        if new_id is not None:
            now = self.clock.monotonic()
            self.records.dlq_retried[entry_id] = now
            life = self._lives.get(entry_id)
            if life is not None and life.retried is None:
                life.retried = now
            entry = self.records.dlq_entries.get(entry_id)
            if entry is not None:
                self.records.outbox_keys[new_id] = entry.idempotency_key

    # -- tasks ----------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """A task of the service process: a crash kills it."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _spawn_background(self, coro: Awaitable[Any]) -> None:
        """A task of the harness (probes): it survives crashes."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def new_dispatcher(self, store: Store, fake: FakeN8n) -> Dispatcher:
        self.instance += 1
        instance = self.instance
        build = self.hooks.dispatcher or Dispatcher
        d = build(
            self.settings,
            store,
            self.clock,
            transport=fake.transport,
            rng=derive_rng(self.seed, f"dispatcher:{instance}"),
            observers=[self.observe],
            breaker_listeners=[_BreakerRecorder(self, instance)],
            instance=f"dispatcher-{instance}",
        )
        self.trace.add("start", f"dispatcher-{instance}")
        return d

    # -- the run --------------------------------------------------------------------------------

    async def main(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.trace.bind(clock)
        self.records.start = clock.now()
        ids_rng = derive_rng(self.seed, "ids")

        def ids() -> str:
            return uuid4_text(ids_rng.getrandbits(128))

        schema: str | None = None
        if self.store_url.startswith(("postgresql://", "postgres://")):
            schema = f"chaos_{uuid.uuid4().hex[:12]}"
            with clock.real_io():
                _create_schema(self.store_url, schema)
        raw = _open(self.store_url, ids, schema)
        self.inspector: StoreInspector = raw  # the checkers' view: the rows as stored
        inner: Store = raw
        if self.hooks.store is not None:
            inner = self.hooks.store(inner)
        store = cast(Store, _ObservedStore(inner, self, real_io=schema is not None))
        self.store = store
        try:
            with clock.real_io() if schema is not None else _NullContext():
                await raw.migrate()
            await self._run(store)
        finally:
            with clock.real_io() if schema is not None else _NullContext():
                await raw.close()
            if schema is not None:
                with clock.real_io():
                    _drop_schema(self.store_url, schema)

    async def _run(self, store: Store) -> None:
        scenario = self.scenario
        clock = self.clock
        fake = FakeN8n(
            clock=clock,
            faults=scenario.n8n_faults,
            rng=derive_rng(self.seed, "n8n"),
            journal_capacity=10_000_000,
        )
        self.fake = fake
        stripe = FakeStripe(
            clock=clock,
            seed=derive_rng(self.seed, "stripe-ids").getrandbits(32),
            secrets={
                t: self.settings.tenants[t].stripe_webhook_secrets[0] for t in scenario.tenants
            },
        )
        self.stripe = stripe
        self._dispatcher = self.new_dispatcher(store, fake)
        # As the app wires it: new rows are inserted already claimed for immediate delivery.
        intake = Intake(self.settings, store, clock, claim_lease=self._dispatcher.lease)
        plan, specs = self._plan()
        self.specs = specs
        end = scenario.end
        workers = [
            asyncio.ensure_future(self._traffic(plan, intake, store, fake)),
            asyncio.ensure_future(self._cron()),
            asyncio.ensure_future(self._crashes(store, fake)),
            asyncio.ensure_future(self._dlq_retries(store)),
            asyncio.ensure_future(self._checkpoints(store)),
            asyncio.ensure_future(self._ticker(end)),
        ]
        await clock.sleep(end - clock.monotonic())
        self.trace.add("end", f"tasks={len(self.tasks)}")
        for w in workers:
            w.cancel()
        for task in list(self.tasks) + list(self._background):
            task.cancel()
        outcomes = await asyncio.gather(
            *workers, *self.tasks, *self._background, return_exceptions=True
        )
        failures = [
            o
            for o in outcomes
            if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
        ]
        if failures:
            raise SimulationError(
                f"{self.scenario.file}: a simulation task failed at t={clock.monotonic():.3f}: "
                f"{failures[0]!r}"
            ) from failures[0]
        self.records.end = clock.monotonic()
        await self._checkpoint(store)
        if self.records.dlq_retried:
            async with self._inspecting(store) as inspector:
                rows = await inspector.outbox_rows(include_done=True)
            self.records.retried_rows = [r for r in rows if r.retry_count > 0]
        self.records.journal = fake.journal.entries()
        for e in self.records.journal:
            self.trace.add(
                "n8n",
                f"#{e.seq} t={e.t:.6f} {e.tenant} {e.path} key={e.idempotency_key} "
                f"in_flight={e.in_flight} fault={e.fault} status={e.status} outcome={e.outcome} "
                f"ran={e.ran}",
            )

    # -- traffic ----------------------------------------------------------------------------

    def _plan(self) -> tuple[list[_Planned], list[_EventSpec]]:
        """Every Stripe event and every delivery of it, decided up front from the seed."""
        s = self.scenario
        tr = s.traffic
        rng = derive_rng(self.seed, "traffic")
        times = _arrivals(tr.shape, tr.events, tr.start, tr.duration, rng)
        for b in tr.bursts:
            times.extend(b.at + rng.random() * b.spread for _ in range(b.events))
        times.sort()
        tenant_cum = _cumulative(s.weights)
        mix_cum = _cumulative([w for _, w in tr.mix])
        types = [name for name, _ in tr.mix]
        start_unix = int((self.records.start - _EPOCH).total_seconds())
        specs: list[_EventSpec] = []
        id_rng = derive_rng(self.seed, "event-ids")
        faults = s.stripe
        frng = derive_rng(self.seed, "stripe-faults")
        plan: list[_Planned] = []
        seq = 0

        def add(t: float, tenant: str, event: int, kind: str, stamp: int | None = None) -> None:
            nonlocal seq
            seq += 1
            plan.append(_Planned(t, seq, tenant, event, kind, 0, stamp))

        for index, t in enumerate(times):
            tenant = s.tenants[_pick(tenant_cum, rng.random())]
            etype = types[_pick(mix_cum, rng.random())]
            created = start_unix + int(t)
            specs.append(_EventSpec(tenant, etype, created, "evt_" + _token(id_rng, 24)))
            send_t = t
            if faults.out_of_order and frng.random() < faults.out_of_order:
                send_t = t + frng.uniform(*faults.out_of_order_delay)
            add(send_t, tenant, index, "delivery")
            if faults.duplicates and frng.random() < faults.duplicates:
                add(send_t + frng.uniform(*faults.duplicate_delay), tenant, index, "duplicate")
            if faults.replays and frng.random() < faults.replays:
                later = send_t + frng.uniform(*faults.replay_delay)
                add(later, tenant, index, "replay", start_unix + int(send_t))
            if faults.resigned_old and frng.random() < faults.resigned_old:
                add(send_t + frng.uniform(*faults.resigned_delay), tenant, index, "resigned")
            if faults.bad_signatures and frng.random() < faults.bad_signatures:
                bad = _BAD_KINDS[frng.randrange(len(_BAD_KINDS))]
                add(send_t + frng.random(), tenant, index, f"bad:{bad}")
            if faults.concurrent_duplicates and frng.random() < faults.concurrent_duplicates:
                at = send_t + frng.uniform(0.0, 5.0)
                for _ in range(faults.burst_copies):
                    add(at, tenant, index, "burst")
        heapq.heapify(plan)
        return plan, specs

    def _body(self, spec: _EventSpec) -> bytes:
        """The event as the fake Stripe builds it: one realistic template per tenant and type
        (customer, subscription, invoice), stamped with this event's id and creation time."""
        key = (spec.tenant, spec.type)
        rendered = self._templates.get(key)
        if rendered is None:
            # Render the pretty-printed body once with sentinels in the two fields that change,
            # then substitute: the same bytes as rendering each event, at a fraction of the cost.
            template = self.stripe.event(spec.type, tenant=spec.tenant, created=spec.created)
            marked = {**template, "id": _ID_SENTINEL, "created": _CREATED_SENTINEL}
            rendered = self.stripe.body(marked).decode()
            self._templates[key] = rendered
        body = rendered.replace(_ID_MARK, json.dumps(spec.id), 1)
        return body.replace(_CREATED_MARK, str(spec.created), 1).encode()

    async def _traffic(
        self, plan: list[_Planned], intake: Intake, store: Store, fake: FakeN8n
    ) -> None:
        clock = self.clock
        remaining: dict[int, int] = {}
        for p in plan:
            remaining[p.event] = remaining.get(p.event, 0) + 1
        bodies: dict[int, bytes] = {}
        schedule = self.scenario.stripe.retry_schedule
        seq = len(plan) + 1
        while plan:
            item = heapq.heappop(plan)
            wait = item.t - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            spec = self.specs[item.event]
            group = [item]
            if item.kind == "burst":
                while plan and plan[0].t == item.t and plan[0].kind == "burst":
                    group.append(heapq.heappop(plan))
            body = bodies.get(item.event)
            if body is None:
                body = self._body(spec)
            if len(group) == 1:
                answers = [await self._send(item, spec, body, intake)]
            else:
                answers = await asyncio.gather(*(self._send(g, spec, body, intake) for g in group))
            left = remaining[item.event] - len(group)
            unanswered = any(a is None for a in answers)
            if unanswered and item.kind in _RETRIED and item.attempt < len(schedule):
                at = clock.monotonic() + schedule[item.attempt]
                heapq.heappush(
                    plan, _Planned(at, seq, item.tenant, item.event, "retry", item.attempt + 1)
                )
                seq += 1
                left += 1
            if left > 0:
                remaining[item.event] = left
                bodies[item.event] = body
            else:
                remaining.pop(item.event, None)
                bodies.pop(item.event, None)

    async def _send(
        self, item: _Planned, spec: _EventSpec, body: bytes, intake: Intake
    ) -> int | None:
        secret = self.settings.tenants[spec.tenant].stripe_webhook_secrets[0]
        stamp = item.stamp if item.stamp is not None else int(self.clock.now().timestamp())
        header: str | None
        if item.kind.startswith("bad:"):
            header = _forge(item.kind[4:], secret, stamp, body)
        else:
            header = _sign(secret, stamp, body)
        if not self.up:
            self.records.sends.append(
                Send(self.clock.monotonic(), spec.tenant, spec.id, item.kind, None, "DOWN")
            )
            self.trace.add("stripe", f"{spec.tenant} {spec.id} {item.kind} DOWN")
            return None
        verdict = ""
        if self.seed_guard is not None:
            verdict = self._seed_verdict(spec, header, body)
        result = await intake.handle(spec.tenant, header, body)
        self.records.sends.append(
            Send(
                self.clock.monotonic(),
                spec.tenant,
                spec.id,
                item.kind,
                result.status,
                result.code.value,
                result.outbox_ids,
                verdict,
            )
        )
        self.trace.add(
            "stripe",
            f"{spec.tenant} {spec.id} {item.kind} {result.status} {result.code.value} "
            f"outbox={','.join(result.outbox_ids)}{' seed=' + verdict if verdict else ''}",
        )
        dispatcher = self._dispatcher
        if result.code is IntakeCode.ACCEPTED and dispatcher is not None:
            if result.claimed:
                self._spawn(dispatcher.deliver_claimed(result.claimed))
            elif result.outbox_ids:
                self._spawn(dispatcher.deliver(result.outbox_ids))
        return result.status

    def _seed_verdict(self, spec: _EventSpec, header: str | None, body: bytes) -> str:
        assert self.seed_guard is not None
        try:
            verify(
                header, body, self.settings.tenants[spec.tenant].stripe_webhook_secrets, self.clock
            )
        except SignatureError:
            return "rejected"
        admitted = self.seed_guard.admit(spec.tenant, spec.id, spec.created)
        return "processed" if admitted else "skipped"

    # -- cron, crashes, DLQ retries, checkpoints ---------------------------------------------

    async def _cron(self) -> None:
        cron = self.scenario.cron
        clock = self.clock
        while True:
            await clock.sleep(cron.interval)
            if not self.up or self._dispatcher is None:
                self.trace.add("drain", "skipped (down)")
                continue
            task = self._spawn(self._dispatcher.drain(batch=cron.batch, budget_seconds=cron.budget))
            try:
                report: DrainReport = await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled() and self._crashed():
                    continue
                raise
            self.records.drains.append((clock.monotonic(), report))
            parts = " ".join(f"{k}={v}" for k, v in report.as_dict().items())
            self.trace.add("drain", parts)
            depth = await self.store.dlq_depth(now=clock.now())
            self.records.dlq_depth.append((clock.monotonic(), sum(depth.values())))

    async def _crashes(self, store: Store, fake: FakeN8n) -> None:
        clock = self.clock
        for crash in self.scenario.crashes:
            await clock.sleep(crash.at - clock.monotonic())
            self.up = False
            victims = [t for t in self.tasks if not t.done()]
            for task in victims:
                task.cancel()  # kill -9: no cleanup reaches the store; leases stay behind
            await asyncio.gather(*victims, return_exceptions=True)
            self._dispatcher = None
            self.trace.add("crash", f"killed={len(victims)}")
            await self._checkpoint(store)
            await clock.sleep(crash.restart - clock.monotonic())
            self._dispatcher = self.new_dispatcher(store, fake)
            self.up = True
            self.records.crashes.append((crash.at, crash.restart, len(victims)))
            self.trace.add("restart", f"dispatcher-{self.instance}")
            await self._checkpoint(store)

    async def _dlq_retries(self, store: Store) -> None:
        clock = self.clock
        for at, count in self.scenario.dlq.retries:
            await clock.sleep(at - clock.monotonic())
            if not self.up or self._dispatcher is None:
                self.trace.add("dlq-retry", "skipped (down)")
                continue
            page = await store.dlq_list(DlqFilter(), now=clock.now(), limit=count)
            for entry in page.entries:
                dispatcher = self._dispatcher
                new_id = await store.dlq_retry(entry.id, now=clock.now())
                self.records.retries.append(
                    DlqRetry(
                        clock.monotonic(),
                        entry.id,
                        entry.tenant_id,
                        entry.idempotency_key,
                        entry.retry_count,
                        new_id,
                    )
                )
                self.trace.add("dlq-retry", f"{entry.tenant_id} {entry.id} new={new_id}")
                if new_id is not None:
                    self._spawn(dispatcher.deliver([new_id]))

    async def _probe(self, entry: DlqEntry, life: DlqLife) -> None:
        """Look for a dead letter 1 ms before its expiry (visible) and at it (invisible).

        A stay ended by a manual retry is not probed further: a later stay under the same id
        has its own expiry."""
        clock = self.clock
        for phase, offset in (("before", -0.001), ("at", 0.0)):
            target = entry.expires_at + timedelta(seconds=offset)
            for _ in range(10):
                wait = (target - clock.now()).total_seconds()
                if wait <= 0:
                    break
                await clock.sleep(max(wait, 1e-6))
            if life.retried is not None:
                return
            now = clock.now()
            got = await self.store.dlq_get(entry.id, now=now)
            page = await self.store.dlq_list(
                DlqFilter(tenant_id=entry.tenant_id), now=now, limit=10_000
            )
            listed = any(e.id == entry.id for e in page.entries)
            self.records.probes.append(
                DlqProbe(
                    clock.monotonic(),
                    entry.id,
                    entry.tenant_id,
                    entry.expires_at,
                    phase,
                    got is not None,
                    listed,
                )
            )
            self.trace.add(
                "dlq-probe",
                f"{entry.tenant_id} {entry.id} {phase} get={got is not None} list={listed}",
            )

    async def _checkpoints(self, store: Store) -> None:
        params = self.scenario.invariants.get("nothing_lost", {})
        count = int(params.get("checkpoints", 8))
        if count <= 0:
            return
        step = self.scenario.end / (count + 1)
        for _ in range(count):
            await self.clock.sleep(step)
            await self._checkpoint(store)

    @asynccontextmanager
    async def _inspecting(self, store: Store) -> AsyncIterator[StoreInspector]:
        """The store's inspector, read as the layer's calls run: alone, and on Postgres with
        virtual time held still."""
        lock = getattr(store, "_lock", None)
        real = getattr(store, "_real_io", False)
        async with lock if lock is not None else _AsyncNull():
            with self.clock.real_io() if real else _NullContext():
                yield self.inspector

    async def _checkpoint(self, store: Store) -> None:
        clock = self.clock
        async with self._inspecting(store) as inspector:
            delivered = await inspector.delivered_keys()
            pending = await inspector.outbox_rows()
            dlq = await inspector.dlq_rows()
        cp = Checkpoint(
            clock.monotonic(),
            len(self.records.accepted_keys),
            frozenset(delivered),
            frozenset(r.idempotency_key for r in pending),
            frozenset(e.idempotency_key for e in dlq),
        )
        self.records.checkpoints.append(cp)
        self.trace.add(
            "checkpoint",
            f"delivered={len(cp.delivered)} pending={len(cp.pending)} dlq={len(cp.dlq)}",
        )

    async def _ticker(self, end: float) -> None:
        steps = 100
        for i in range(1, steps + 1):
            await self.clock.sleep(end * i / steps - self.clock.monotonic())
            if self.progress is not None:
                self.progress(i / steps)


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _AsyncNull:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _open(url: str, ids: Callable[[], str], schema: str | None) -> SqliteStore | PostgresStore:
    """The store a URL names; the embedded one without fsync (a simulation needs no
    durability against power loss, and `synchronous=OFF` is most of SQLite's write cost)."""
    return open_store(url, ids=ids, schema=schema, sqlite_synchronous="OFF")


def _create_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _sign(secret: str, stamp: int, body: bytes) -> str:
    return sign(body, secret, stamp)


def _forge(kind: str, secret: str, stamp: int, body: bytes) -> str | None:
    good = _sign(secret, stamp, body)
    sig = good.split("v1=", 1)[1]
    if kind == "tampered":
        return f"t={stamp},v1={format(int(sig[0], 16) ^ 1, 'x')}{sig[1:]}"
    if kind == "no-v1":
        return f"t={stamp},v0={sig}"
    if kind == "unparsable":
        return f"v1={sig}"
    return None


_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


_UUID4_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET: Final = (0x8000 << 48) | (0x4000 << 64)


def uuid4_text(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))` without the UUID object: ids are minted per row."""
    h = "%032x" % (bits & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _token(rng: random.Random, n: int) -> str:
    value = rng.getrandbits(6 * n)
    chars = []
    for _ in range(n):
        value, r = divmod(value, 62)
        chars.append(_ALPHABET[r])
    return "".join(chars)


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(cumulative: list[float], u: float) -> int:
    return min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)


def _arrivals(shape: str, n: int, start: float, duration: float, rng: random.Random) -> list[float]:
    if n == 0:
        return []
    if shape == "poisson":
        gaps = [rng.expovariate(1.0) for _ in range(n)]
        total = sum(gaps) + rng.expovariate(1.0)
        out, acc = [], 0.0
        for g in gaps:
            acc += g
            out.append(start + duration * acc / total)
        return out
    if shape == "diurnal":
        out = []
        for _ in range(100 * n):
            if len(out) == n:
                break
            x = rng.random()
            if rng.random() * 1.8 < 1.0 - 0.8 * math.cos(2 * math.pi * x):
                out.append(start + x * duration)
        return out
    return [start + rng.random() * duration for _ in range(n)]


# --- figures and series --------------------------------------------------------------------


def _figures(sim: _Sim) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    r = sim.records
    sends = r.sends
    codes: dict[str, int] = {}
    for s in sends:
        codes[s.code] = codes.get(s.code, 0) + 1
    delivered_at: dict[str, float] = {}
    retries = snoozes = opens = 0
    delays: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    strategy = sim.settings.n8n_backoff_strategy
    retry_events = [e for _, _, e in r.events if isinstance(e, Retrying)]
    stride = max(1, math.ceil(len(retry_events) / _MAX_SERIES))
    for i, rev in enumerate(retry_events):
        if i % stride == 0:
            delays.append(
                {
                    "strategy": strategy.value,
                    "attempt": rev.attempt,
                    "delay": round(rev.delay, 6),
                    "low": round(rev.bounds[0], 6),
                    "high": round(rev.bounds[1], 6),
                }
            )
    dead = 0
    retry_seconds: dict[int, int] = {}
    for t, _, ev in r.events:
        if isinstance(ev, Attempted) and ev.attempt > 1:
            second = int(t - ev.duration)
            retry_seconds[second] = retry_seconds.get(second, 0) + 1

        if isinstance(ev, Delivered):
            delivered_at.setdefault(ev.idempotency_key, t)
        elif isinstance(ev, Retrying):
            retries += 1
        elif isinstance(ev, Snoozed):
            snoozes += 1
        elif isinstance(ev, DeadLettered):
            dead += 1
        elif isinstance(ev, BreakerChanged):
            if ev.new.value == "OPEN":
                opens += 1
            if len(timeline) < _MAX_SERIES:
                timeline.append(
                    {"tenant": ev.tenant_id, "t": round(r.seconds(ev.at), 6), "state": ev.new.value}
                )
    journal = r.journal
    bucket = max(1.0, math.ceil(r.end / 1000))
    arrivals: dict[int, int] = {}
    per_second: dict[int, int] = {}
    keys: dict[str | None, int] = {}
    for e in journal:
        arrivals[int(e.t // bucket)] = arrivals.get(int(e.t // bucket), 0) + 1
        per_second[int(e.t)] = per_second.get(int(e.t), 0) + 1
        keys[e.idempotency_key] = keys.get(e.idempotency_key, 0) + 1
    accepted_events = {(s.tenant, s.event_id) for s in sends if s.code == "ACCEPTED"}
    generated = len(sim.specs)
    traffic_start = sim.scenario.traffic.start
    if sim.scenario.traffic.bursts:
        traffic_start = min(traffic_start, min(b.at for b in sim.scenario.traffic.bursts))
    all_delivered = len(delivered_at) == len(r.accepted_keys) and bool(r.accepted_keys)
    last = max(delivered_at.values(), default=traffic_start)
    figures: dict[str, float] = {
        "tenants": len(sim.scenario.tenants),
        "events_generated": generated,
        "stripe_requests": len(sends),
        "events_accepted": len(accepted_events),
        "duplicates_refused": codes.get("DUPLICATE", 0),
        "rejected": sum(n for c, n in codes.items() if c not in ("ACCEPTED", "DUPLICATE", "DOWN")),
        "refused_while_down": codes.get("DOWN", 0),
        "deliveries_enqueued": len(r.accepted_keys),
        "delivered": len(delivered_at),
        "dead_lettered": dead,
        "pending_at_end": len(r.checkpoints[-1].pending) if r.checkpoints else 0,
        "retries": retries,
        "snoozes": snoozes,
        "breaker_opens": opens,
        "n8n_calls": len(journal),
        "n8n_duplicate_calls": sum(n - 1 for k, n in keys.items() if k is not None and n > 1),
        "peak_arrivals_per_s": max(per_second.values(), default=0),
        "peak_retries_per_s": max(retry_seconds.values(), default=0),
        "time_until_all_delivered": round(last - traffic_start, 6) if all_delivered else -1.0,
        "drains": len(r.drains),
        "dlq_purged": sum(c for _, _, c in r.purges),
        "dlq_retried": len(r.dlq_retried),
        "crashes": len(r.crashes),
        "trace_lines": sim.trace.count,
    }
    if sim.seed_guard is not None:
        figures.update(_replay_figures(sends))
    depth = r.dlq_depth
    dstride = max(1, math.ceil(len(depth) / 500))
    series: dict[str, list[dict[str, Any]]] = {
        "retry_delays": delays,
        "breaker_timeline": timeline,
        "dlq_depth": [{"t": round(t, 6), "depth": d} for t, d in depth[::dstride]],
        "dlq_purges": [{"t": round(t, 6), "count": c} for t, _, c in r.purges if c][:_MAX_SERIES],
        "arrivals": [{"t": k * bucket, "count": v} for k, v in sorted(arrivals.items())],
    }
    return figures, series


_LEGIT: Final = frozenset({"delivery", "duplicate", "burst", "resigned", "retry"})


def _replay_figures(sends: Sequence[Send]) -> dict[str, float]:
    """Replays accepted and legitimate events dropped, by the processed set and the seed."""
    ours: dict[tuple[str, str], int] = {}
    seed: dict[tuple[str, str], int] = {}
    legit: set[tuple[str, str]] = set()
    for s in sends:
        key = (s.tenant, s.event_id)
        if s.kind in _LEGIT and s.status is not None:
            legit.add(key)
        if s.code == "ACCEPTED":
            ours[key] = ours.get(key, 0) + 1
        if s.seed_guard == "processed":
            seed[key] = seed.get(key, 0) + 1
    return {
        "fixed_replays_accepted": sum(n - 1 for n in ours.values() if n > 1),
        "fixed_legitimate_dropped": sum(1 for k in legit if k not in ours),
        "seed_replays_accepted": sum(n - 1 for n in seed.values() if n > 1),
        "seed_legitimate_dropped": sum(1 for k in legit if k not in seed),
    }


# --- entry point ---------------------------------------------------------------------------


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    store_url: str | None = None,
    settings: Settings | None = None,
    label: str = "",
    hooks: Hooks | None = None,
    progress: Progress | None = None,
    keep_trace: bool = True,
) -> SimRun:
    """Run `scenario` once on a fresh virtual loop and return what happened."""
    run_seed = scenario.seed if seed is None else seed
    url = store_url or scenario.store_url
    sim = _Sim(
        scenario,
        run_seed,
        settings or scenario.settings,
        url,
        hooks if hooks is not None else Hooks(),
        progress,
        keep_trace=keep_trace,
        seed_guard=scenario.comparison is not None and scenario.comparison.kind == "replay",
    )
    wall = time.perf_counter()
    thresholds = gc.get_threshold()
    gc.freeze()  # what exists before the run is not garbage: keep the collector off it
    # Fewer young collections over a large, growing heap, and a middle-aged one only after
    # 1,000 of those: what survives a young collection is almost all records kept to the end.
    gc.set_threshold(50_000, 1_000, 100)
    try:
        run(sim.main, start=DEFAULT_START, max_virtual_seconds=scenario.end + 86_400.0)
    finally:
        gc.set_threshold(*thresholds)
        gc.freeze()  # then thaw: what the run kept joins the oldest generation in one move,
        gc.unfreeze()  # not through a middle-aged collection over all of it
    wall = time.perf_counter() - wall
    figures, series = _figures(sim)
    return SimRun(
        scenario=scenario,
        seed=run_seed,
        label=label or scenario.name,
        store_url=url,
        trace=sim.trace,
        records=sim.records,
        figures=figures,
        series=series,
        simulated_seconds=sim.records.end,
        wall_seconds=wall,
    )


def herd_settings(base: Settings, strategy: Strategy, budget: bool) -> Settings:
    """The scenario's settings with one backoff strategy and the retry budget on or off."""
    return replace(base, n8n_backoff_strategy=strategy, n8n_retry_budget_enabled=budget)


def iter_variants(scenario: Scenario) -> Iterator[tuple[str, Settings]]:
    """The herd comparison's variants: every strategy, each with the budget off and on."""
    comparison = scenario.comparison
    if comparison is None or comparison.kind != "herd":
        yield scenario.name, scenario.settings
        return
    for strategy in comparison.strategies:
        for budget in comparison.budget:
            label = f"{strategy.value}{'+budget' if budget else ''}"
            yield label, herd_settings(scenario.settings, strategy, budget)


class ProgressBar:
    """A plain-text progress bar over simulated time on stderr (quiet when not a TTY)."""

    def __init__(self, label: str, *, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self._last = -1

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        pct = int(fraction * 100)
        if pct == self._last:
            return
        self._last = pct
        width = 30
        filled = int(width * fraction)
        self.stream.write(
            f"\r  {self.label:<28} [{'#' * filled}{'.' * (width - filled)}] {pct:3d}%"
        )
        if pct >= 100:
            self.stream.write("\n")
        self.stream.flush()
