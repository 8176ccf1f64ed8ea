"""What the layer decided, as plain events: metrics, logs and the harness's trace subscribe.

Every event carries the clock's wall time (`at`) so a trace reads like a story, and only data
that is safe to log (never a secret, never a payload).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from reliability.breaker import State
from reliability.errors import ErrorCode

__all__ = [
    "Attempted",
    "BreakerChanged",
    "DeadLettered",
    "Delivered",
    "DuplicateSent",
    "Event",
    "Observer",
    "QuotaWaited",
    "Retrying",
    "Snoozed",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempted:
    """One call to n8n finished: `outcome` is None on 2xx."""

    at: datetime
    tenant_id: str
    workflow: str
    outbox_id: str
    idempotency_key: str
    attempt: int
    status: int | None
    outcome: ErrorCode | None
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    at: datetime
    tenant_id: str
    workflow: str
    outbox_id: str
    idempotency_key: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrying:
    """A failed attempt will be retried after `delay` seconds (`bounds` is the strategy's)."""

    at: datetime
    tenant_id: str
    outbox_id: str
    attempt: int
    delay: float
    bounds: tuple[float, float]
    retry_after: float | None
    cause: ErrorCode
    previous: float | None = None
    """The delay drawn last time for this delivery, which decorrelated jitter grows from."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snoozed:
    """Put off without spending an attempt (open breaker, or no quota slot in time)."""

    at: datetime
    tenant_id: str
    outbox_id: str
    until: datetime
    cause: ErrorCode


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLettered:
    at: datetime
    tenant_id: str
    workflow: str
    outbox_id: str
    dlq_id: str
    idempotency_key: str
    error_code: ErrorCode
    attempts: int


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    at: datetime
    tenant_id: str
    old: State
    new: State


@dataclass(frozen=True, slots=True)
class QuotaWaited:
    at: datetime
    tenant_id: str
    waited: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateSent:
    """n8n answered 2xx to a call whose row this instance no longer holds: its lease lapsed
    (or `complete` could not be recorded) and another claimer has it, so n8n saw, or will see,
    this delivery more than once. `cause` says which: `lost_lease` or `store_failed`."""

    at: datetime
    tenant_id: str
    outbox_id: str
    idempotency_key: str
    cause: str


Event = (
    Attempted
    | Delivered
    | Retrying
    | Snoozed
    | DeadLettered
    | BreakerChanged
    | QuotaWaited
    | DuplicateSent
)
Observer = Callable[[Event], None]
