"""One set of columns and row mappers for both stores; the dialects differ in `Dialect` only.

Both stores select the same columns in the same order and turn them into the same objects. What
differs is how each database hands two kinds of value back, and `Dialect` says it in one place:

- JSON (`payload`, `errors`): PostgreSQL's `jsonb` arrives decoded; SQLite stores JSON text.
- Instants: PostgreSQL's `timestamptz` arrives as a datetime in the session's time zone (made
  `datetime.UTC` here, so reprs and traces do not depend on the server); SQLite stores the
  fixed-width UTC text of `iso_utc`, whose text order is time order.

On the way in, PostgreSQL takes datetimes and casts JSON text with `::jsonb` in its SQL; SQLite
takes `iso_utc(instant)` and the JSON text as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from reliability.errors import ErrorCode
from reliability.store._common import decode_errors
from reliability.store.base import DlqEntry, LedgerRow, OutboxRow

__all__ = [
    "DLQ_COLUMNS",
    "LEDGER_COLUMNS",
    "OUTBOX_COLUMNS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "columns",
    "dlq_entry",
    "iso_utc",
    "ledger_row",
    "outbox_row",
]

OUTBOX_COLUMNS: Final = (
    "id",
    "tenant_id",
    "workflow",
    "payload",
    "idempotency_key",
    "event_id",
    "attempt",
    "next_attempt_at",
    "locked_until",
    "lease_token",
    "created_at",
    "errors",
    "retry_count",
    "done_at",
)
"""What `outbox_row` reads, in its order."""

DLQ_COLUMNS: Final = (
    "id",
    "tenant_id",
    "workflow_name",
    "payload",
    "error_message",
    "error_code",
    "retry_count",
    "created_at",
    "expires_at",
    "idempotency_key",
    "source_outbox_id",
    "original_created_at",
    "errors",
    "event_id",
)
"""What `dlq_entry` reads, in its order."""

LEDGER_COLUMNS: Final = (
    "tenant_id",
    "last_processed_event_id",
    "last_processed_at",
    "updated_at",
)
"""What `ledger_row` reads, in its order (the seed's `stripe_event_ledger`)."""


def columns(names: Sequence[str], alias: str | None = None) -> str:
    """A select list: `id, tenant_id, ...`, or `o.id, o.tenant_id, ...` with an alias."""
    return ", ".join(names if alias is None else (f"{alias}.{n}" for n in names))


def iso_utc(value: datetime) -> str:
    """An instant as SQLite stores it: fixed-width UTC ISO-8601 text (text order is time order).

    `value` is already UTC (the stores pass it through `_common.utc` first)."""
    return value.isoformat(timespec="microseconds")


def _as_is(value: Any) -> Any:
    return value


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database hands JSON and instants back: all the mappers need to know about it."""

    name: str
    json: Callable[[Any], Any]
    """A JSON column's value as Python data."""
    instant: Callable[[Any], datetime]
    """A timestamp column's value as a datetime in `datetime.UTC`."""


POSTGRES: Final = Dialect("postgres", json=_as_is, instant=_in_utc)
SQLITE: Final = Dialect("sqlite", json=json.loads, instant=datetime.fromisoformat)


def outbox_row(r: Sequence[Any], d: Dialect) -> OutboxRow:
    """An outbox row selected as `OUTBOX_COLUMNS`."""
    instant = d.instant
    return OutboxRow(
        id=str(r[0]),
        tenant_id=r[1],
        workflow=r[2],
        payload=d.json(r[3]),
        idempotency_key=r[4],
        event_id=r[5],
        attempt=r[6],
        next_attempt_at=instant(r[7]),
        locked_until=None if r[8] is None else instant(r[8]),
        lease_token=r[9],
        created_at=instant(r[10]),
        errors=decode_errors(d.json(r[11])),
        retry_count=r[12],
        done_at=None if r[13] is None else instant(r[13]),
    )


def dlq_entry(r: Sequence[Any], d: Dialect) -> DlqEntry:
    """A DLQ entry selected as `DLQ_COLUMNS` (the seed's nullable columns get their defaults)."""
    instant = d.instant
    entry_id = str(r[0])
    return DlqEntry(
        id=entry_id,
        tenant_id=r[1],
        workflow_name=r[2],
        payload=d.json(r[3]),
        error_message=r[4],
        error_code=ErrorCode(r[5]),
        retry_count=r[6] if r[6] is not None else 0,
        created_at=instant(r[7]),
        expires_at=instant(r[8]),
        idempotency_key=r[9] if r[9] is not None else f"dlq:{entry_id}",
        source_outbox_id=None if r[10] is None else str(r[10]),
        original_created_at=None if r[11] is None else instant(r[11]),
        errors=decode_errors(d.json(r[12])),
        event_id=r[13],
    )


def ledger_row(r: Sequence[Any], d: Dialect) -> LedgerRow:
    """A ledger row selected as `LEDGER_COLUMNS` (a seed row without `updated_at` gets
    `last_processed_at`)."""
    processed = d.instant(r[2])
    updated = processed if r[3] is None else d.instant(r[3])
    return LedgerRow(r[0], r[1], processed, updated)
