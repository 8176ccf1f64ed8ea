"""What both stores share: input checks, JSON codecs, id minting, migration files, alert rule.

Everything here is pure (no I/O but reading the packaged SQL files), so both stores refuse the
same bad input with the same message before they touch a database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from reliability.errors import ErrorCode
from reliability.store.base import (
    MAX_ERROR_MESSAGE,
    AcceptResult,
    AttemptError,
    DlqAlert,
    DlqCursor,
    DlqEntry,
    DlqPage,
    InvalidInput,
    NewDelivery,
    OutboxRow,
    PayloadError,
    StoreError,
)

_log = logging.getLogger("reliability.store")

MAX_LIMIT = 10_000
"""Largest `limit` a claim or a DLQ page accepts."""

PURGE_BATCH = 5_000
"""Rows one purge statement deletes; purges loop in batches so locks stay short."""

MAX_PURGE_ROUNDS = 100_000
"""Bound on purge batches per call (500 million rows): every loop is bounded."""

# An escaped NUL (`\\u0000`) preceded by an even number of backslashes: Postgres `jsonb` refuses it.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_id(factory: Callable[[], str]) -> str:
    """Mint an id from the injected factory, in canonical UUID text (both stores key on it)."""
    raw = factory()
    canonical = as_uuid(raw)
    if canonical is None:
        raise StoreError(f"the ids factory returned {raw!r}, which is not a UUID string")
    return canonical


def default_ids() -> str:
    return str(uuid.uuid4())


def as_uuid(value: str) -> str | None:
    """Canonical form of an id from outside, or None when it cannot be one of ours."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical: skip the round trip through uuid.UUID
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; naive datetimes are refused (their meaning depends on the server)."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def text(value: object, name: str) -> str:
    """A non-empty string without NUL characters (neither database stores NUL in text)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{name} must not be empty")
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters")
    return value


def positive(value: timedelta, name: str) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInput(f"{name} must be a positive timedelta, got {value!r}")
    return value


def limit(value: int, name: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInput(f"{name} must be an int in 1..{MAX_LIMIT}, got {value!r}")
    return value


_PAYLOAD_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True)


def encode_payload(payload: object, *, max_bytes: int, where: str) -> str:
    """Serialise a payload to JSON text, or raise `PayloadError` naming `where`."""
    if not isinstance(payload, Mapping):
        raise PayloadError(f"{where}: payload must be a JSON object, got {type(payload).__name__}")
    try:
        encoded = _PAYLOAD_ENCODER.encode(dict(payload))
        size = len(encoded.encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"{where}: payload is not JSON-serialisable: {exc}") from exc
    if size > max_bytes:
        raise PayloadError(f"{where}: payload is {size} bytes, over the limit of {max_bytes}")
    if "\\u0000" in encoded and _ESCAPED_NUL.search(encoded):  # cheap test first
        raise PayloadError(f"{where}: payload contains a NUL character (\\u0000)")
    return encoded


@dataclass(frozen=True, slots=True)
class EncodedDelivery:
    """A `NewDelivery` checked and serialised, ready for either store."""

    id: str
    tenant_id: str
    workflow: str
    payload: str
    idempotency_key: str
    event_id: str | None


def encode_deliveries(
    deliveries: Sequence[NewDelivery], *, ids: Callable[[], str], max_bytes: int
) -> list[EncodedDelivery]:
    """Check every delivery first, then mint ids: a bad one refuses the whole batch."""
    if isinstance(deliveries, NewDelivery) or not isinstance(deliveries, Sequence):
        raise InvalidInput("deliveries must be a sequence of NewDelivery")
    checked: list[tuple[str, str, str, str, str | None]] = []
    for n, d in enumerate(deliveries):
        where = f"deliveries[{n}]"
        if not isinstance(d, NewDelivery):
            raise InvalidInput(f"{where} must be a NewDelivery, got {type(d).__name__}")
        checked.append(
            (
                text(d.tenant_id, f"{where}.tenant_id"),
                text(d.workflow, f"{where}.workflow"),
                encode_payload(d.payload, max_bytes=max_bytes, where=where),
                text(d.idempotency_key, f"{where}.idempotency_key"),
                None if d.event_id is None else text(d.event_id, f"{where}.event_id"),
            )
        )
    return [EncodedDelivery(new_id(ids), *c) for c in checked]


def bound(message: str) -> str:
    """Cut a message to `MAX_ERROR_MESSAGE` characters (and drop NULs)."""
    return str(message).replace("\x00", "")[:MAX_ERROR_MESSAGE]


def error_json(error: AttemptError) -> dict[str, Any]:
    if not isinstance(error, AttemptError):
        raise InvalidInput(f"error must be an AttemptError, got {type(error).__name__}")
    return {
        "attempt": int(error.attempt),
        "at": utc(error.at, "error.at").isoformat(),
        "code": ErrorCode(error.code).value,
        "message": bound(error.message),
    }


def errors_json(errors: Sequence[AttemptError]) -> str:
    return json.dumps([error_json(e) for e in errors])


def decode_errors(raw: object) -> tuple[AttemptError, ...]:
    """Errors as stored (a JSON list, or its text on SQLite) back to `AttemptError`s."""
    items = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(items, list):
        raise StoreError(f"stored attempt errors are not a list: {items!r}")
    return tuple(
        AttemptError(
            attempt=int(i["attempt"]),
            at=datetime.fromisoformat(i["at"]),
            code=ErrorCode(i["code"]),
            message=str(i["message"]),
        )
        for i in items
    )


def crossed(depth: int, threshold: int) -> bool:
    """True when one more entry took the depth from below `threshold` to at least it."""
    return depth - 1 < threshold <= depth


def fire_alert(hook: DlqAlert | None, tenant_id: str, depth: int, threshold: int) -> None:
    """Call the alert hook after the commit; a failing hook is logged, never undoes the move."""
    if hook is None or not crossed(depth, threshold):
        return
    try:
        hook(tenant_id, depth, threshold)
    except Exception:
        _log.exception("dlq alert hook failed for tenant %s (depth %d)", tenant_id, depth)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str


def migrations(dialect: str) -> list[Migration]:
    """The packaged migrations for `dialect` (`postgres` or `sqlite`), in version order."""
    folder = resources.files("reliability.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        head = name.split("_", 1)[0]
        if not head.isdigit():
            raise StoreError(f"migration file {dialect}/{name} must start with a version number")
        sql = entry.read_text(encoding="utf-8")
        digest = hashlib.sha256(sql.encode("utf-8")).hexdigest()
        found.append(Migration(int(head), name, sql, digest))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two {dialect} migrations share a version number: {versions}")
    return found


def check_applied(applied_checksum: str, migration: Migration, dialect: str) -> None:
    if applied_checksum != migration.checksum:
        raise StoreError(
            f"migration {dialect}/{migration.name} was changed after it was applied "
            "(checksum differs); add a new migration instead"
        )


def page(entries: list[DlqEntry], limit: int) -> DlqPage:
    """A page from `limit + 1` fetched entries: the extra one only says there is more."""
    if len(entries) <= limit:
        return DlqPage(tuple(entries), None)
    last = entries[limit - 1]
    return DlqPage(tuple(entries[:limit]), DlqCursor(last.created_at, last.id))


def accept_lease(
    now: datetime, lease: timedelta | None, ids: Callable[[], str]
) -> tuple[datetime | None, str | None]:
    """`(locked_until, lease_token)` for rows claimed as they are accepted, or `(None, None)`."""
    if lease is None:
        return None, None
    return now + positive(lease, "lease"), new_id(ids)


def accepted(
    deliveries: Sequence[NewDelivery],
    encoded: Sequence[EncodedDelivery],
    now: datetime,
    until: datetime | None,
    token: str | None,
) -> AcceptResult:
    """The `AcceptResult` of a new event; with a lease, its rows as the claimer holds them."""
    ids = tuple(e.id for e in encoded)
    if until is None:
        return AcceptResult(new=True, outbox_ids=ids)
    claimed = tuple(
        OutboxRow(
            id=e.id,
            tenant_id=e.tenant_id,
            workflow=e.workflow,
            payload=d.payload,
            idempotency_key=e.idempotency_key,
            event_id=e.event_id,
            attempt=0,
            next_attempt_at=now,
            locked_until=until,
            lease_token=token,
            created_at=now,
        )
        for d, e in zip(deliveries, encoded, strict=True)
    )
    return AcceptResult(new=True, outbox_ids=ids, claimed=claimed)
