"""What the reliability layer needs from a database, and what the harness reads from one.

`Store` is the contract the layer calls; `StoreInspector` the reads only the harness and tests
make. Two implementations of both pass one contract suite: `PostgresStore` (psycopg 3, pooled)
for production and `SqliteStore` (stdlib) for local chaos runs. Every time comes from the
caller (the injected clock), never from `now()` inside SQL, so simulated time works on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, runtime_checkable

from reliability.errors import ErrorCode

__all__ = [
    "DEFAULT_DLQ_ALERT_THRESHOLD",
    "DEFAULT_PAYLOAD_LIMIT",
    "DEFAULT_PROCESSED_RETENTION",
    "MAX_ERROR_MESSAGE",
    "TABLES",
    "AcceptResult",
    "AttemptError",
    "DlqAlert",
    "DlqCursor",
    "DlqEntry",
    "DlqFilter",
    "DlqPage",
    "FleetSlots",
    "InvalidInput",
    "LedgerRow",
    "NewDelivery",
    "OutboxRow",
    "PayloadError",
    "Store",
    "StoreError",
    "StoreInspector",
    "StoreUnavailable",
]

DEFAULT_PAYLOAD_LIMIT = 1024 * 1024
"""Largest serialised payload accepted, in bytes (1 MiB)."""

DEFAULT_PROCESSED_RETENTION = timedelta(days=3, seconds=300)
"""How long processed event ids are kept: Stripe's retry window plus the signature tolerance."""

MAX_ERROR_MESSAGE = 1000
"""Error messages are cut to this many characters before they are stored."""

DEFAULT_DLQ_ALERT_THRESHOLD = 100
"""A tenant's unexpired DLQ depth at which the alert hook fires (see `DlqAlert`)."""


class StoreError(Exception):
    """Base of every error a store raises on purpose."""


class InvalidInput(StoreError, ValueError):
    """An argument the store refuses (naive datetime, empty or NUL-bearing text, bad limit).

    Raised before anything is written; the message names the argument.
    """


class PayloadError(InvalidInput):
    """A payload that is not JSON-serialisable or is over the size limit; nothing was written."""


class StoreUnavailable(StoreError):
    """The database could not be reached or the connection died mid-transaction.

    The transaction was rolled back: nothing of the call was written.
    """


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One delivery to enqueue: a payload for one workflow of one tenant."""

    tenant_id: str
    workflow: str
    payload: Mapping[str, Any]
    idempotency_key: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptError:
    """One failed attempt, kept on the outbox row and carried into the DLQ."""

    attempt: int
    at: datetime
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A delivery not yet done, as a claimer sees it."""

    id: str
    tenant_id: str
    workflow: str
    payload: Mapping[str, Any]
    idempotency_key: str
    event_id: str | None
    attempt: int
    """Attempts already spent (0 before the first call)."""
    next_attempt_at: datetime
    locked_until: datetime | None
    lease_token: str | None
    """Proof of the current claim; every write after a claim must present it."""
    created_at: datetime
    errors: tuple[AttemptError, ...] = ()
    retry_count: int = 0
    """Manual retries from the DLQ this delivery has been through (0 for a fresh one)."""
    done_at: datetime | None = None
    """When the delivery was marked delivered; None while it is pending."""


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """The answer of `Store.accept_event`: new, or a duplicate that wrote nothing."""

    new: bool
    outbox_ids: tuple[str, ...] = ()
    claimed: tuple[OutboxRow, ...] = ()
    """With `lease=`, the new rows as their claimer holds them (same order as `outbox_ids`)."""


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The seed's `stripe_event_ledger` row: last processed event per tenant (compatibility)."""

    tenant_id: str
    last_processed_event_id: str
    last_processed_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """A dead letter: the seed's `n8n_dlq` row plus where it came from."""

    id: str
    tenant_id: str
    workflow_name: str
    payload: Mapping[str, Any]
    error_message: str | None
    error_code: ErrorCode
    retry_count: int
    created_at: datetime
    """When the entry entered the DLQ."""
    expires_at: datetime
    """`created_at` + the tenant's TTL: invisible to reads from this instant on."""
    idempotency_key: str
    source_outbox_id: str | None = None
    original_created_at: datetime | None = None
    errors: tuple[AttemptError, ...] = ()
    event_id: str | None = None
    """The Stripe event the delivery came from, carried back into the outbox on a retry."""


@dataclass(frozen=True, slots=True)
class DlqFilter:
    """Filters for DLQ reads; `None` means any."""

    tenant_id: str | None = None
    workflow_name: str | None = None
    error_code: ErrorCode | None = None


@dataclass(frozen=True, slots=True)
class DlqCursor:
    """Keyset position: the (created_at, id) of the last entry of the previous page."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class DlqPage:
    entries: tuple[DlqEntry, ...]
    next_cursor: DlqCursor | None


DlqAlert = Callable[[str, int, int], None]
"""Called as `alert(tenant_id, depth, threshold)` when a tenant's DLQ depth reaches a threshold."""


@runtime_checkable
class FleetSlots(Protocol):
    """Per-tenant concurrency slots shared by every process on one database (PostgreSQL, or
    one SQLite file).

    A slot is a lease: held until released or until `until`, so a crashed holder's slots come
    back by expiry.
    """

    async def slot_acquire(
        self, tenant_id: str, limit: int, *, now: datetime, until: datetime
    ) -> str | None:
        """One of the tenant's `limit` slots until `until` (a token), or None if all are held."""
        ...

    async def slot_release(self, tenant_id: str, token: str) -> None:
        """Free the slot `token` holds (nothing if it expired and was taken since)."""
        ...


@runtime_checkable
class Store(Protocol):
    """What the reliability layer calls: the intake, the dispatcher and the service.

    Every method is atomic: it commits whole or writes nothing. Reads of whole tables and
    lookups only the harness and tests make are on `StoreInspector`; both stores implement both.
    """

    # -- lifecycle -----------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Apply pending migrations; safe to call twice and from two processes at once."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers (for `/readyz`)."""
        ...

    async def close(self) -> None: ...

    # -- intake: replay guard and outbox -------------------------------------------------------

    async def accept_event(
        self,
        tenant_id: str,
        event_id: str,
        deliveries: Sequence[NewDelivery],
        *,
        now: datetime,
        lease: timedelta | None = None,
    ) -> AcceptResult:
        """Record (tenant, event) as processed and enqueue its deliveries, in one transaction.

        A duplicate writes nothing (`new=False`). The seed's `stripe_event_ledger` row for the
        tenant is kept up to date on the way. With no deliveries only the event is recorded.
        With `lease`, the new rows are inserted already claimed (`AcceptResult.claimed`), so
        the caller delivers them at once without a claim round trip; if it dies, they come
        back to a drain when the lease has passed.
        """
        ...

    async def purge_processed(self, *, older_than: datetime) -> int:
        """Forget processed event ids recorded before `older_than`; returns how many."""
        ...

    # -- dispatcher: claims and leases ---------------------------------------------------------

    async def claim_due(self, limit: int, *, now: datetime, lease: timedelta) -> list[OutboxRow]:
        """Claim up to `limit` due rows nobody holds (FOR UPDATE SKIP LOCKED), oldest due first."""
        ...

    async def claim(self, outbox_id: str, *, now: datetime, lease: timedelta) -> OutboxRow | None:
        """Claim one row by id if it is due and free (to deliver a row just written: an intake
        without a lease, a manual DLQ retry)."""
        ...

    async def renew(self, outbox_id: str, lease_token: str, *, until: datetime) -> bool:
        """Extend a held lease; False if the lease was lost (another claimer has the row)."""
        ...

    async def complete(self, outbox_id: str, lease_token: str, *, now: datetime) -> bool:
        """Mark delivered; False (and nothing written) if the lease is no longer ours."""
        ...

    async def reschedule(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        error: AttemptError,
        hold_until: datetime | None = None,
    ) -> bool:
        """Spend an attempt: attempt + 1, error appended, next attempt time set.

        With `hold_until` the caller keeps the lease until then (it will retry in-process);
        without, the lease is released and any drain may pick the row up when due.
        """
        ...

    async def snooze(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        hold_until: datetime | None = None,
    ) -> bool:
        """Reschedule without spending an attempt (the breaker was open)."""
        ...

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
        """Delete from the outbox and insert into the DLQ in one transaction."""
        ...

    async def purge_done(self, *, older_than: datetime) -> int:
        """Delete delivered outbox rows marked done before `older_than`; returns how many."""
        ...

    # -- dead-letter queue ---------------------------------------------------------------------

    async def dlq_list(
        self,
        flt: DlqFilter,
        *,
        now: datetime,
        after: DlqCursor | None = None,
        limit: int = 50,
    ) -> DlqPage:
        """Unexpired entries matching `flt`, newest first, keyset-paginated."""
        ...

    async def dlq_get(self, entry_id: str, *, now: datetime) -> DlqEntry | None: ...

    async def dlq_retry(self, entry_id: str, *, now: datetime) -> str | None:
        """Atomically take the entry back into the outbox (retry_count + 1).

        Returns the new outbox row id; None if it is gone, expired or another retry won.
        """
        ...

    async def dlq_purge_expired(self, *, now: datetime) -> int:
        """Delete expired entries; safe under concurrent callers (each row counted once)."""
        ...

    async def dlq_depth(self, *, now: datetime) -> dict[tuple[str, ErrorCode], int]:
        """Unexpired entries per (tenant, error code)."""
        ...


TABLES: Final = ("processed_events", "stripe_event_ledger", "outbox", "n8n_dlq", "tenant_slots")
"""The tables the layer writes, as `StoreInspector.row_counts` names them."""


@runtime_checkable
class StoreInspector(Protocol):
    """What the harness and tests read: whole tables and lookups the layer never makes.

    The simulator's checkpoints (what the `nothing_lost` checker compares) and the test suites
    look through it; nothing in `reliability/` calls it. Reads only: it writes nothing.
    """

    async def applied_migrations(self) -> list[int]:
        """Versions recorded in the migrations table, in order."""
        ...

    async def is_processed(self, tenant_id: str, event_id: str) -> bool:
        """True if (tenant, event) is in the processed-event set (not yet purged)."""
        ...

    async def ledger_row(self, tenant_id: str) -> LedgerRow | None:
        """The tenant's seed `stripe_event_ledger` row, if any event of it was processed."""
        ...

    async def outbox_rows(self, *, include_done: bool = False) -> list[OutboxRow]:
        """Every outbox row not yet delivered (with `include_done`, delivered ones too), in
        order of creation."""
        ...

    async def delivered_keys(self) -> set[str]:
        """Idempotency keys of rows marked delivered and not yet purged."""
        ...

    async def dlq_rows(self) -> list[DlqEntry]:
        """Every DLQ entry, expired or not (until purged), oldest first."""
        ...

    async def row_counts(self) -> dict[str, int]:
        """Rows in each table the layer writes (`TABLES`), by table name: what shows that
        purges keep them bounded."""
        ...
