"""The embedded store: stdlib sqlite3, the default for local chaos runs (no server needed).

Methods are `async def` but call sqlite directly, without threads, so a virtual-time event loop
stays deterministic. WAL mode lets readers run beside the one writer; every write is a
`BEGIN IMMEDIATE` transaction, so several processes can share one file: writers queue on the
file lock (up to `busy_timeout`) and a claim is never handed to two of them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from reliability.errors import ErrorCode
from reliability.store import _common as c
from reliability.store.base import (
    DEFAULT_DLQ_ALERT_THRESHOLD,
    DEFAULT_PAYLOAD_LIMIT,
    TABLES,
    AcceptResult,
    AttemptError,
    DlqAlert,
    DlqCursor,
    DlqEntry,
    DlqFilter,
    DlqPage,
    InvalidInput,
    LedgerRow,
    NewDelivery,
    OutboxRow,
    StoreError,
    StoreUnavailable,
)
from reliability.store.rows import (
    DLQ_COLUMNS,
    LEDGER_COLUMNS,
    OUTBOX_COLUMNS,
    SQLITE,
    columns,
    dlq_entry,
    iso_utc,
    ledger_row,
    outbox_row,
)

__all__ = ["SqliteStore"]

_OUTBOX = columns(OUTBOX_COLUMNS)
_DLQ = columns(DLQ_COLUMNS)
_LEDGER = columns(LEDGER_COLUMNS)
_outbox = partial(outbox_row, d=SQLITE)
_dlq = partial(dlq_entry, d=SQLITE)
_ledger = partial(ledger_row, d=SQLITE)
_HELD = "id = ? AND lease_token = ? AND done_at IS NULL"
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _unavailable(path: str, exc: sqlite3.Error) -> StoreUnavailable:
    """What a failed statement on `path` raises (the file is locked, gone or unreadable)."""
    return StoreUnavailable(f"sqlite {path}: {exc}")


class _Tx:
    """`with store._tx() as db:` (a class, not a generator: it runs on every write)."""

    __slots__ = ("_db", "_path")

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _unavailable(self._path, exc) from exc
        return self._db

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException as failed:
                exc = failed
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):
            raise _unavailable(self._path, exc) from exc
        if kind is None:
            raise exc  # COMMIT failed otherwise; the body's own error propagates by itself

    def _rollback(self) -> None:
        if self._db.in_transaction:
            # If even the rollback fails (file gone), the journal undoes it on next open.
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """Open `path`; `:memory:` opens a private `memdb` database where SQLite has that VFS.

    A plain `:memory:` database's COMMIT grows with the database's size (about 10 us at 5,000
    pages, 120 us at 35,000), which made long simulations quadratic; `memdb` commits stay flat.
    It has SQLite's default cap of 1 GiB; a larger run belongs in a file.
    """
    if path == ":memory:":
        with suppress(sqlite3.OperationalError):  # SQLite older than 3.36 has no memdb VFS
            return sqlite3.connect(
                "file:reliability?vfs=memdb", isolation_level=None, timeout=busy_timeout, uri=True
            )
    return sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)


class SqliteStore:
    """`Store` and `StoreInspector` on one SQLite file (or `:memory:`), opened at construction."""

    def __init__(
        self,
        path: str,
        *,
        ids: Callable[[], str] | None = None,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        dlq_alert: DlqAlert | None = None,
        dlq_alert_threshold: int = DEFAULT_DLQ_ALERT_THRESHOLD,
        busy_timeout: float = 10.0,
        synchronous: str = "FULL",
        purge_batch: int = c.PURGE_BATCH,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise InvalidInput(f"synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}")
        self._path = path
        self._ids = ids or c.default_ids
        self._payload_limit = payload_limit
        self._dlq_alert = dlq_alert
        self._dlq_alert_threshold = dlq_alert_threshold
        self._purge_batch = c.limit(purge_batch, "purge_batch")
        try:
            db = _connect(path, busy_timeout)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {path}: cannot open: {exc}") from exc
        self._db: sqlite3.Connection | None = db
        self._slots_made: set[tuple[str, int]] = set()

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r})"

    @property
    def path(self) -> str:
        return self._path

    # -- plumbing ------------------------------------------------------------------------------

    def _live(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"sqlite {self._path}: the store is closed")
        return self._db

    def _tx(self) -> _Tx:
        """A write transaction: taken with BEGIN IMMEDIATE, rolled back whole on any error."""
        return _Tx(self._live(), self._path)

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._live().execute(query, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise _unavailable(self._path, exc) from exc

    def _purge(self, query: str, param: str) -> int:
        total = 0
        for _ in range(c.MAX_PURGE_ROUNDS):
            with self._tx() as db:
                n = db.execute(query, (param, self._purge_batch)).rowcount
            total += n
            if n < self._purge_batch:
                break
        return total

    # -- lifecycle -----------------------------------------------------------------------------

    async def migrate(self) -> None:
        for m in c.migrations("sqlite"):
            with self._tx() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS reliability_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
                    " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
                )
                row = db.execute(
                    "SELECT checksum FROM reliability_migrations WHERE version = ?", (m.version,)
                ).fetchone()
                if row is not None:
                    c.check_applied(row[0], m, "sqlite")
                    continue
                for statement in _statements(m.sql, m.name):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO reliability_migrations (version, name, checksum) VALUES (?, ?, ?)",
                    (m.version, m.name, m.checksum),
                )

    async def ping(self) -> None:
        self._read("SELECT 1")

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    # -- intake: replay guard and outbox -------------------------------------------------------

    def _record(self, db: sqlite3.Connection, tenant: str, event: str, at: str) -> bool:
        inserted = db.execute(
            "INSERT INTO processed_events (tenant_id, event_id, processed_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (tenant, event, at),
        ).rowcount
        if inserted != 1:
            return False
        db.execute(
            "INSERT INTO stripe_event_ledger"
            " (tenant_id, last_processed_event_id, last_processed_at, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
            " last_processed_event_id = excluded.last_processed_event_id,"
            " last_processed_at = excluded.last_processed_at, updated_at = excluded.updated_at"
            " WHERE stripe_event_ledger.last_processed_at <= excluded.last_processed_at",
            (tenant, event, at, at),
        )
        return True

    async def accept_event(
        self,
        tenant_id: str,
        event_id: str,
        deliveries: Sequence[NewDelivery],
        *,
        now: datetime,
        lease: timedelta | None = None,
    ) -> AcceptResult:
        tenant, event = c.text(tenant_id, "tenant_id"), c.text(event_id, "event_id")
        when = c.utc(now, "now")
        at = iso_utc(when)
        encoded = c.encode_deliveries(deliveries, ids=self._ids, max_bytes=self._payload_limit)
        until, token = c.accept_lease(when, lease, self._ids) if encoded else (None, None)
        with self._tx() as db:
            if not self._record(db, tenant, event, at):
                return AcceptResult(new=False)
            _insert_outbox(db, encoded, at, None if until is None else iso_utc(until), token)
        return c.accepted(deliveries, encoded, when, until, token)

    async def purge_processed(self, *, older_than: datetime) -> int:
        return self._purge(
            "DELETE FROM processed_events WHERE (tenant_id, event_id) IN ("
            " SELECT tenant_id, event_id FROM processed_events WHERE processed_at < ? LIMIT ?)",
            iso_utc(c.utc(older_than, "older_than")),
        )

    # -- dispatcher: claims and leases ---------------------------------------------------------

    async def claim_due(self, limit: int, *, now: datetime, lease: timedelta) -> list[OutboxRow]:
        at = c.utc(now, "now")
        until, n = iso_utc(at + c.positive(lease, "lease")), c.limit(limit)
        token, now_s = c.new_id(self._ids), iso_utc(at)
        with self._tx() as db:
            rows = db.execute(
                "UPDATE outbox SET locked_until = ?, lease_token = ? WHERE id IN ("
                " SELECT id FROM outbox WHERE done_at IS NULL AND next_attempt_at <= ?"
                " AND (locked_until IS NULL OR locked_until <= ?)"
                f" ORDER BY next_attempt_at, id LIMIT ?) RETURNING {_OUTBOX}",
                (until, token, now_s, now_s, n),
            ).fetchall()
        claimed = [_outbox(r) for r in rows]
        claimed.sort(key=lambda r: (r.next_attempt_at, r.id))
        return claimed

    async def claim(self, outbox_id: str, *, now: datetime, lease: timedelta) -> OutboxRow | None:
        at = c.utc(now, "now")
        until = iso_utc(at + c.positive(lease, "lease"))
        oid = c.as_uuid(outbox_id)
        if oid is None:
            return None
        token, now_s = c.new_id(self._ids), iso_utc(at)
        with self._tx() as db:
            row = db.execute(
                "UPDATE outbox SET locked_until = ?, lease_token = ?"
                " WHERE id = ? AND done_at IS NULL AND next_attempt_at <= ?"
                f" AND (locked_until IS NULL OR locked_until <= ?) RETURNING {_OUTBOX}",
                (until, token, oid, now_s, now_s),
            ).fetchone()
        return None if row is None else _outbox(row)

    def _held(self, set_clause: str, params: tuple[Any, ...], oid: str, token: str) -> bool:
        key = c.as_uuid(oid)
        if key is None or not isinstance(token, str):
            return False
        # One statement is its own transaction in autocommit mode: no BEGIN/COMMIT round trip.
        query = f"UPDATE outbox SET {set_clause} WHERE {_HELD}"
        try:
            return self._live().execute(query, (*params, key, token)).rowcount == 1
        except sqlite3.OperationalError as exc:
            raise _unavailable(self._path, exc) from exc

    async def renew(self, outbox_id: str, lease_token: str, *, until: datetime) -> bool:
        params = (iso_utc(c.utc(until, "until")),)
        return self._held("locked_until = ?", params, outbox_id, lease_token)

    async def complete(self, outbox_id: str, lease_token: str, *, now: datetime) -> bool:
        params = (iso_utc(c.utc(now, "now")),)
        set_clause = "done_at = ?, locked_until = NULL, lease_token = NULL"
        return self._held(set_clause, params, outbox_id, lease_token)

    async def reschedule(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        error: AttemptError,
        hold_until: datetime | None = None,
    ) -> bool:
        extra = json.dumps(c.error_json(error))
        params = _reschedule_params(next_attempt_at, hold_until, extra, spent=1)
        return self._held(_RESCHEDULE_SET, params, outbox_id, lease_token)

    async def snooze(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        hold_until: datetime | None = None,
    ) -> bool:
        params = _reschedule_params(next_attempt_at, hold_until, None, spent=0)
        return self._held(_RESCHEDULE_SET, params, outbox_id, lease_token)

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
        at = c.utc(now, "now")
        expires, now_s = iso_utc(at + c.positive(ttl, "ttl")), iso_utc(at)
        code, text = ErrorCode(error_code).value, c.bound(message)
        extra = [] if error is None else [c.error_json(error)]
        new_id = c.new_id(self._ids)
        oid = c.as_uuid(outbox_id)
        if oid is None or not isinstance(lease_token, str):
            return None
        with self._tx() as db:
            row = db.execute(
                f"DELETE FROM outbox WHERE {_HELD} RETURNING id, tenant_id, workflow, payload,"
                " idempotency_key, event_id, errors, retry_count, dlq_id,"
                " coalesce(original_created_at, created_at)",
                (oid, lease_token),
            ).fetchone()
            if row is None:
                return None
            errors = json.dumps([*json.loads(row[6]), *extra])
            entry_id = row[8] if row[8] is not None else new_id
            stored = db.execute(
                "INSERT INTO n8n_dlq (id, tenant_id, workflow_name, payload, error_message,"
                " error_code, retry_count, created_at, expires_at, idempotency_key, event_id,"
                " source_outbox_id, original_created_at, errors)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_DLQ}",
                (
                    *(entry_id, row[1], row[2], row[3], text, code, row[7], now_s, expires),
                    *(row[4], row[5], row[0], row[9], errors),
                ),
            ).fetchone()
            depth = db.execute(
                "SELECT count(*) FROM n8n_dlq WHERE tenant_id = ? AND expires_at > ?",
                (row[1], now_s),
            ).fetchone()[0]
        entry = _dlq(stored)
        c.fire_alert(self._dlq_alert, entry.tenant_id, int(depth), self._dlq_alert_threshold)
        return entry

    async def purge_done(self, *, older_than: datetime) -> int:
        return self._purge(
            "DELETE FROM outbox WHERE id IN ("
            " SELECT id FROM outbox WHERE done_at IS NOT NULL AND done_at < ? LIMIT ?)",
            iso_utc(c.utc(older_than, "older_than")),
        )

    # -- dead-letter queue ---------------------------------------------------------------------

    async def dlq_list(
        self,
        flt: DlqFilter,
        *,
        now: datetime,
        after: DlqCursor | None = None,
        limit: int = 50,
    ) -> DlqPage:
        conds, params = ["expires_at > ?"], [iso_utc(c.utc(now, "now"))]
        n = c.limit(limit)
        if flt.tenant_id is not None:
            conds.append("tenant_id = ?")
            params.append(flt.tenant_id)
        if flt.workflow_name is not None:
            conds.append("workflow_name = ?")
            params.append(flt.workflow_name)
        if flt.error_code is not None:
            conds.append("error_code = ?")
            params.append(ErrorCode(flt.error_code).value)
        if after is not None:
            cursor_id = c.as_uuid(after.id)
            if cursor_id is None:
                raise InvalidInput(f"after.id is not a DLQ entry id: {after.id!r}")
            conds.append("(created_at, id) < (?, ?)")
            params += [iso_utc(c.utc(after.created_at, "after.created_at")), cursor_id]
        rows = self._read(
            f"SELECT {_DLQ} FROM n8n_dlq WHERE {' AND '.join(conds)}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, n + 1),
        )
        return c.page([_dlq(r) for r in rows], n)

    async def dlq_get(self, entry_id: str, *, now: datetime) -> DlqEntry | None:
        at = iso_utc(c.utc(now, "now"))
        eid = c.as_uuid(entry_id)
        if eid is None:
            return None
        rows = self._read(f"SELECT {_DLQ} FROM n8n_dlq WHERE id = ? AND expires_at > ?", (eid, at))
        return _dlq(rows[0]) if rows else None

    async def dlq_retry(self, entry_id: str, *, now: datetime) -> str | None:
        at = iso_utc(c.utc(now, "now"))
        eid = c.as_uuid(entry_id)
        if eid is None:
            return None
        new_id = c.new_id(self._ids)
        with self._tx() as db:
            row = db.execute(
                "DELETE FROM n8n_dlq WHERE id = ? AND expires_at > ? RETURNING id, tenant_id,"
                " workflow_name, payload, coalesce(idempotency_key, 'dlq:' || id), event_id,"
                " coalesce(retry_count, 0) + 1, errors, coalesce(original_created_at, created_at)",
                (eid, at),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key, event_id,"
                " attempt, next_attempt_at, created_at, errors, retry_count, dlq_id,"
                " original_created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                (
                    *(new_id, row[1], row[2], row[3], row[4], row[5], at, at),
                    *(row[7], row[6], row[0], row[8]),
                ),
            )
        return new_id

    async def dlq_purge_expired(self, *, now: datetime) -> int:
        return self._purge(
            "DELETE FROM n8n_dlq WHERE id IN ("
            " SELECT id FROM n8n_dlq WHERE expires_at <= ? LIMIT ?)",
            iso_utc(c.utc(now, "now")),
        )

    async def dlq_depth(self, *, now: datetime) -> dict[tuple[str, ErrorCode], int]:
        rows = self._read(
            "SELECT tenant_id, error_code, count(*) FROM n8n_dlq WHERE expires_at > ?"
            " GROUP BY tenant_id, error_code",
            (iso_utc(c.utc(now, "now")),),
        )
        return {(r[0], ErrorCode(r[1])): int(r[2]) for r in rows}

    # -- fleet-wide tenant slots (FleetSlots) -------------------------------------------------

    async def slot_acquire(
        self, tenant_id: str, limit: int, *, now: datetime, until: datetime
    ) -> str | None:
        """One of the tenant's `limit` slots until `until` (a token for `slot_release`), or None
        when all are held: the lowest free slot (never taken, released, or expired), in one
        write transaction, so processes sharing the file never take the same slot."""
        n = c.limit(limit)
        token = c.new_id(self._ids)
        now_s, until_s = iso_utc(c.utc(now, "now")), iso_utc(c.utc(until, "until"))
        with self._tx() as db:
            if (tenant_id, n) not in self._slots_made:  # the slot rows, once per handle
                db.executemany(
                    "INSERT INTO tenant_slots (tenant_id, slot) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    [(tenant_id, i) for i in range(n)],
                )
            row = db.execute(
                "UPDATE tenant_slots SET token = ?, expires_at = ? WHERE tenant_id = ? AND slot = ("
                " SELECT slot FROM tenant_slots WHERE tenant_id = ? AND slot < ?"
                " AND expires_at <= ? ORDER BY slot LIMIT 1) RETURNING slot",
                (token, until_s, tenant_id, tenant_id, n, now_s),
            ).fetchone()
        self._slots_made.add((tenant_id, n))
        return token if row is not None else None

    async def slot_release(self, tenant_id: str, token: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE tenant_slots SET token = NULL, expires_at = ''"
                " WHERE tenant_id = ? AND token = ?",
                (tenant_id, token),
            )

    # -- inspection (StoreInspector: the harness's and tests' reads) ---------------------------

    async def applied_migrations(self) -> list[int]:
        rows = self._read("SELECT version FROM reliability_migrations ORDER BY version")
        return [int(r[0]) for r in rows]

    async def is_processed(self, tenant_id: str, event_id: str) -> bool:
        rows = self._read(
            "SELECT 1 FROM processed_events WHERE tenant_id = ? AND event_id = ?",
            (tenant_id, event_id),
        )
        return bool(rows)

    async def ledger_row(self, tenant_id: str) -> LedgerRow | None:
        rows = self._read(
            f"SELECT {_LEDGER} FROM stripe_event_ledger WHERE tenant_id = ?", (tenant_id,)
        )
        return _ledger(rows[0]) if rows else None

    async def outbox_rows(self, *, include_done: bool = False) -> list[OutboxRow]:
        where = "" if include_done else " WHERE done_at IS NULL"
        rows = self._read(f"SELECT {_OUTBOX} FROM outbox{where} ORDER BY created_at, id")
        return [_outbox(r) for r in rows]

    async def delivered_keys(self) -> set[str]:
        rows = self._read("SELECT idempotency_key FROM outbox WHERE done_at IS NOT NULL")
        return {r[0] for r in rows}

    async def dlq_rows(self) -> list[DlqEntry]:
        rows = self._read(f"SELECT {_DLQ} FROM n8n_dlq ORDER BY created_at, id")
        return [_dlq(r) for r in rows]

    async def row_counts(self) -> dict[str, int]:
        query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES)
        return {str(name): int(n) for name, n in self._read(query)}


_RESCHEDULE_SET = (
    "attempt = attempt + ?,"
    " errors = CASE WHEN ? IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(?)) END,"
    " next_attempt_at = ?, locked_until = ?,"
    " lease_token = CASE WHEN ? THEN lease_token END"
)


def _reschedule_params(
    next_attempt_at: datetime, hold_until: datetime | None, extra: str | None, *, spent: int
) -> tuple[Any, ...]:
    hold = None if hold_until is None else iso_utc(c.utc(hold_until, "hold_until"))
    at = iso_utc(c.utc(next_attempt_at, "next_attempt_at"))
    return (spent, extra, extra, at, hold, hold is not None)


def _insert_outbox(
    db: sqlite3.Connection,
    encoded: Sequence[c.EncodedDelivery],
    at: str,
    until: str | None,
    token: str | None,
) -> None:
    db.executemany(
        "INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key, event_id,"
        " attempt, next_attempt_at, created_at, locked_until, lease_token)"
        " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        [
            (
                e.id,
                e.tenant_id,
                e.workflow,
                e.payload,
                e.idempotency_key,
                e.event_id,
                at,
                at,
                until,
                token,
            )
            for e in encoded
        ],
    )


def _statements(script: str, name: str) -> Iterator[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    leftover = "".join(
        ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")
    )
    if leftover:
        raise StoreError(f"migration sqlite/{name} ends with an unfinished statement")
