"""Everything a simulated run observed, in order: what the invariant checkers read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from harness.fakes.journal import JournalEntry
from reliability.config import Settings
from reliability.dispatch import DrainReport
from reliability.errors import ErrorCode
from reliability.events import Event
from reliability.store import DlqEntry, OutboxRow

__all__ = [
    "BreakerOp",
    "Checkpoint",
    "DlqLife",
    "DlqProbe",
    "DlqRetry",
    "Records",
    "Send",
]


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
    """The Step 06 design's ledger-only guard's verdict here (replay comparison only)."""


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
    dlq_written: list[DlqEntry] = field(default_factory=list)
    """Every entry as written, in order (one per stay: a reused id appears once per stay)."""
    dlq_lives: list[DlqLife] = field(default_factory=list)
    """Every stay of a delivery in the DLQ, in order."""
    dlq_retried: dict[str, float] = field(default_factory=dict)
    """DLQ id -> when it was last taken back into the outbox by hand."""
    purges: list[tuple[float, datetime, int]] = field(default_factory=list)
    drains: list[tuple[float, DrainReport]] = field(default_factory=list)
    crashes: list[tuple[float, float, int]] = field(default_factory=list)
    """(crashed at, restarted at, deliveries killed)."""
    downtime: list[tuple[int, float, float]] = field(default_factory=list)
    """(instance, crashed at, restarted at) for each crash, in the order they ended."""
    callers: tuple[int, ...] = ()
    """The instance that made each call of `journal` (same positions)."""
    probes: list[DlqProbe] = field(default_factory=list)
    retries: list[DlqRetry] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    journal: tuple[JournalEntry, ...] = ()
    retried_rows: list[OutboxRow] = field(default_factory=list)
    """Outbox rows made by manual DLQ retries, as the store holds them at the end."""
    dlq_depth: list[tuple[float, int]] = field(default_factory=list)
    table_rows: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    """(t, rows per table) at evenly spaced instants of a day-long run (none in shorter ones)."""
    end: float = 0.0

    def seconds(self, when: datetime) -> float:
        return (when - self.start).total_seconds()
