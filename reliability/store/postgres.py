"""The production store: PostgreSQL through psycopg 3 and an async connection pool.

Every method is one SQL statement run in autocommit (data-modifying CTEs chain the steps), so
each call is atomic by construction and costs one round trip. Times are always parameters.
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

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
    StoreUnavailable,
)
from reliability.store.batch import Batcher
from reliability.store.rows import (
    DLQ_COLUMNS,
    LEDGER_COLUMNS,
    OUTBOX_COLUMNS,
    POSTGRES,
    columns,
    dlq_entry,
    ledger_row,
    outbox_row,
)

__all__ = ["ConnectionCheck", "PostgresStore"]

_Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]

_OUTBOX = columns(OUTBOX_COLUMNS)
_OUTBOX_O = columns(OUTBOX_COLUMNS, "o")
_DLQ = columns(DLQ_COLUMNS)
_DLQ_I = columns(DLQ_COLUMNS, "i")
_LEDGER = columns(LEDGER_COLUMNS)
_outbox = partial(outbox_row, d=POSTGRES)
_dlq = partial(dlq_entry, d=POSTGRES)
_ledger = partial(ledger_row, d=POSTGRES)

_MIGRATION_LOCK = 0x52454C49  # "RELI": advisory lock class for migrations (per schema)
_MIGRATION_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(%s::text, current_schema())))"
)

_RECORD = """
WITH ins AS (
    INSERT INTO processed_events (tenant_id, event_id, processed_at)
    VALUES (%(tenant)s, %(event)s, %(now)s)
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, event_id, processed_at
), led AS (
    INSERT INTO stripe_event_ledger AS l
        (tenant_id, last_processed_event_id, last_processed_at, updated_at)
    SELECT tenant_id, event_id, processed_at, processed_at FROM ins
    ON CONFLICT (tenant_id) DO UPDATE SET
        last_processed_event_id = EXCLUDED.last_processed_event_id,
        last_processed_at = EXCLUDED.last_processed_at,
        updated_at = EXCLUDED.updated_at
    WHERE l.last_processed_at <= EXCLUDED.last_processed_at
)
"""

_UNNEST = """
    FROM unnest(%(ids)s::uuid[], %(tenants)s::text[], %(workflows)s::text[],
                %(payloads)s::text[], %(keys)s::text[], %(events)s::text[])
        AS d(id, tenant_id, workflow, payload, idempotency_key, event_id)
"""

_INSERT_OUTBOX = """
INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key, event_id, attempt,
                    next_attempt_at, created_at, locked_until, lease_token)
SELECT d.id, d.tenant_id, d.workflow, d.payload::jsonb, d.idempotency_key, d.event_id, 0,
       %(now)s, %(now)s, %(until)s::timestamptz, %(token)s::text
"""

_ACCEPT = (
    _RECORD
    + ", box AS ("
    + _INSERT_OUTBOX
    + _UNNEST
    + " WHERE EXISTS (SELECT 1 FROM ins)) SELECT count(*) FROM ins"
)

_CLAIM_DUE = f"""
WITH due AS (
    SELECT id FROM outbox
    WHERE done_at IS NULL AND next_attempt_at <= %(now)s
      AND (locked_until IS NULL OR locked_until <= %(now)s)
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o SET locked_until = %(until)s, lease_token = %(token)s
FROM due WHERE o.id = due.id
RETURNING {_OUTBOX_O}
"""

_CLAIM_ONE = f"""
UPDATE outbox SET locked_until = %(until)s, lease_token = %(token)s
WHERE id = %(id)s AND done_at IS NULL AND next_attempt_at <= %(now)s
  AND (locked_until IS NULL OR locked_until <= %(now)s)
RETURNING {_OUTBOX}
"""

_HELD = "id = %(id)s AND lease_token = %(token)s AND done_at IS NULL"

_RENEW = f"UPDATE outbox SET locked_until = %(until)s WHERE {_HELD}"

_COMPLETE_MANY = """
UPDATE outbox AS o SET done_at = d.now, locked_until = NULL, lease_token = NULL
FROM unnest(%(ids)s::uuid[], %(tokens)s::text[], %(nows)s::timestamptz[]) AS d(id, token, now)
WHERE o.id = d.id AND o.lease_token = d.token AND o.done_at IS NULL
RETURNING o.id
"""

_RESCHEDULE = f"""
UPDATE outbox SET
    attempt = attempt + %(spent)s,
    errors = errors || %(error)s::jsonb,
    next_attempt_at = %(next)s,
    locked_until = %(hold)s,
    lease_token = CASE WHEN %(keep)s THEN lease_token END
WHERE {_HELD}
"""

_MOVE_TO_DLQ = f"""
WITH d AS (
    DELETE FROM outbox WHERE {_HELD}
    RETURNING id, tenant_id, workflow, payload, idempotency_key, event_id, errors, retry_count,
              dlq_id, coalesce(original_created_at, created_at) AS original_created_at
), i AS (
    INSERT INTO n8n_dlq (id, tenant_id, workflow_name, payload, error_message, error_code,
                         retry_count, created_at, expires_at, idempotency_key, event_id,
                         source_outbox_id, original_created_at, errors)
    SELECT coalesce(d.dlq_id, %(new_id)s::uuid), d.tenant_id, d.workflow, d.payload,
           %(message)s, %(code)s, d.retry_count, %(now)s, %(expires)s, d.idempotency_key,
           d.event_id, d.id, d.original_created_at, d.errors || %(error)s::jsonb
    FROM d
    RETURNING {_DLQ}
)
SELECT {_DLQ_I},
       (SELECT count(*) FROM n8n_dlq q WHERE q.tenant_id = i.tenant_id
          AND q.expires_at > %(now)s) + 1
FROM i
"""

_DLQ_RETRY = """
WITH d AS (
    DELETE FROM n8n_dlq WHERE id = %(id)s AND expires_at > %(now)s
    RETURNING id, tenant_id, workflow_name, payload, idempotency_key, event_id, retry_count,
              errors, coalesce(original_created_at, created_at) AS original_created_at
)
INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key, event_id, attempt,
                    next_attempt_at, created_at, errors, retry_count, dlq_id, original_created_at)
SELECT %(new_id)s, tenant_id, workflow_name, payload,
       coalesce(idempotency_key, 'dlq:' || id::text), event_id, 0, %(now)s, %(now)s, errors,
       coalesce(retry_count, 0) + 1, id, original_created_at
FROM d
RETURNING id
"""

_PURGE_DLQ = """
WITH gone AS (
    SELECT id FROM n8n_dlq WHERE expires_at <= %(now)s LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
DELETE FROM n8n_dlq AS q USING gone WHERE q.id = gone.id
"""

_PURGE_PROCESSED = """
WITH gone AS (
    SELECT tenant_id, event_id FROM processed_events WHERE processed_at < %(cutoff)s
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
DELETE FROM processed_events AS p USING gone
WHERE p.tenant_id = gone.tenant_id AND p.event_id = gone.event_id
"""

_PURGE_DONE = """
WITH gone AS (
    SELECT id FROM outbox WHERE done_at < %(cutoff)s LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
DELETE FROM outbox AS o USING gone WHERE o.id = gone.id
"""

_ENSURE_SLOTS = """
INSERT INTO tenant_slots (tenant_id, slot)
SELECT %(tenant)s, g FROM generate_series(0, %(limit)s - 1) AS g ON CONFLICT DO NOTHING
"""

_TAKE_SLOT = """
WITH free AS (
    SELECT slot FROM tenant_slots
    WHERE tenant_id = %(tenant)s AND slot < %(limit)s AND expires_at <= %(now)s
    ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE tenant_slots AS s SET token = %(token)s, expires_at = %(until)s
FROM free WHERE s.tenant_id = %(tenant)s AND s.slot = free.slot
RETURNING s.slot
"""

_FREE_SLOTS = """
UPDATE tenant_slots AS s SET token = NULL, expires_at = '-infinity'
FROM unnest(%(tenants)s::text[], %(tokens)s::text[]) AS f(tenant_id, token)
WHERE s.tenant_id = f.tenant_id AND s.token = f.token
"""

_BATCH = 500
"""Rows (or slots) one batched statement carries at most."""


class ConnectionCheck:
    """When the pool checks a connection before handing it out (one round trip): only when it
    may be stale. A connection that came back to the pool less than `idle` seconds ago was
    working then; one idle for longer is checked, and so is every connection for `idle` seconds
    after a statement of the store lost its connection (a server restart or a
    `pg_terminate_backend` takes them all at once). Checking every checkout cost a round trip
    per statement under load."""

    def __init__(self, idle: float = 1.0) -> None:
        self._idle = idle
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[TupleRow], float]
        self._returned = weakref.WeakKeyDictionary()
        self._suspect_until = -math.inf

    async def reset(self, conn: AsyncConnection[TupleRow]) -> None:
        """The pool's `reset` hook: the connection is back, in a clean state."""
        self._returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[TupleRow]) -> None:
        """The pool's `check` hook: raises when the connection is broken."""
        now = time.monotonic()
        returned = self._returned.get(conn)
        if returned is None or now - returned > self._idle or now < self._suspect_until:
            await AsyncConnectionPool.check_connection(conn)

    def suspect(self) -> None:
        """A statement lost its connection: check every connection for a while."""
        self._suspect_until = time.monotonic() + self._idle


class PostgresStore:
    """`Store` and `StoreInspector` on PostgreSQL. Build it with `open_store` or from a pool.

    The pool must hand out autocommit connections with `search_path` on the store's schema;
    `open_store` does that. The pool is opened lazily on first use.
    """

    def __init__(
        self,
        pool: _Pool,
        *,
        schema: str | None = None,
        ids: Callable[[], str] | None = None,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        dlq_alert: DlqAlert | None = None,
        dlq_alert_threshold: int = DEFAULT_DLQ_ALERT_THRESHOLD,
        purge_batch: int = c.PURGE_BATCH,
        connection_check: ConnectionCheck | None = None,
    ) -> None:
        self._pool = pool
        self._check = connection_check
        self._schema = schema
        self._ids = ids or c.default_ids
        self._payload_limit = payload_limit
        self._dlq_alert = dlq_alert
        self._dlq_alert_threshold = dlq_alert_threshold
        self._purge_batch = c.limit(purge_batch, "purge_batch")
        self._slots_made: set[tuple[str, int]] = set()
        # Concurrent completions (and slot releases) share one statement: see store/batch.py.
        self._completions = Batcher(self._complete_many, _BATCH)
        self._releases = Batcher(self._release_many, _BATCH)
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self._schema!r})"

    @property
    def schema(self) -> str | None:
        return self._schema

    def batch_figures(self) -> dict[str, int]:
        """Statements run and rows (or slots) they carried, for completions and slot releases:
        under load many rows share a statement (see `complete`)."""
        return {
            "complete_statements": self._completions.statements,
            "complete_rows": self._completions.items,
            "release_statements": self._releases.statements,
            "release_slots": self._releases.items,
        }

    # -- plumbing ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            # Lost connection, server shutdown, pool timeout: the statement did not commit.
            if self._check is not None:
                self._check.suspect()
            raise StoreUnavailable(f"postgres unavailable: {exc}") from exc

    async def _one(self, query: str, params: dict[str, Any]) -> TupleRow | None:
        async with self._conn() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def _all(self, query: str | sql.Composed, params: dict[str, Any]) -> list[TupleRow]:
        async with self._conn() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def _count(self, query: str, params: dict[str, Any]) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(query, params)
            return cur.rowcount

    async def _purge(self, query: str, params: dict[str, Any]) -> int:
        total = 0
        for _ in range(c.MAX_PURGE_ROUNDS):
            n = await self._count(query, {**params, "batch": self._purge_batch})
            total += n
            if n < self._purge_batch:
                break
        return total

    # -- lifecycle -----------------------------------------------------------------------------

    async def migrate(self) -> None:
        found = c.migrations("postgres")
        async with self._conn() as conn:
            for m in found:
                async with conn.transaction():
                    await conn.execute(_MIGRATION_LOCK_SQL, (_MIGRATION_LOCK, self._schema))
                    if self._schema is not None:
                        await conn.execute(
                            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                                sql.Identifier(self._schema)
                            )
                        )
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS reliability_migrations ("
                        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                        " checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    cur = await conn.execute(
                        "SELECT checksum FROM reliability_migrations WHERE version = %s",
                        (m.version,),
                    )
                    row = await cur.fetchone()
                    if row is not None:
                        c.check_applied(row[0], m, "postgres")
                        continue
                    await conn.execute(m.sql.encode("utf-8"))
                    await conn.execute(
                        "INSERT INTO reliability_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )

    async def ping(self) -> None:
        await self._one("SELECT 1", {})

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

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
        at = c.utc(now, "now")
        params = {
            "tenant": c.text(tenant_id, "tenant_id"),
            "event": c.text(event_id, "event_id"),
            "now": at,
        }
        encoded = c.encode_deliveries(deliveries, ids=self._ids, max_bytes=self._payload_limit)
        # No deliveries: the same statement records the event alone (and mints no lease token).
        until, token = c.accept_lease(at, lease, self._ids) if encoded else (None, None)
        row = await self._one(
            _ACCEPT, params | _columns(encoded) | {"until": until, "token": token}
        )
        if row is None or row[0] == 0:
            return AcceptResult(new=False)
        return c.accepted(deliveries, encoded, at, until, token)

    async def purge_processed(self, *, older_than: datetime) -> int:
        return await self._purge(_PURGE_PROCESSED, {"cutoff": c.utc(older_than, "older_than")})

    # -- dispatcher: claims and leases ---------------------------------------------------------

    async def claim_due(self, limit: int, *, now: datetime, lease: timedelta) -> list[OutboxRow]:
        at = c.utc(now, "now")
        params = {
            "now": at,
            "limit": c.limit(limit),
            "until": at + c.positive(lease, "lease"),
            "token": c.new_id(self._ids),
        }
        rows = [_outbox(r) for r in await self._all(_CLAIM_DUE, params)]
        rows.sort(key=lambda r: (r.next_attempt_at, r.id))
        return rows

    async def claim(self, outbox_id: str, *, now: datetime, lease: timedelta) -> OutboxRow | None:
        at = c.utc(now, "now")
        until = at + c.positive(lease, "lease")
        oid = c.as_uuid(outbox_id)
        if oid is None:
            return None
        params = {"id": oid, "now": at, "until": until, "token": c.new_id(self._ids)}
        row = await self._one(_CLAIM_ONE, params)
        return None if row is None else _outbox(row)

    async def renew(self, outbox_id: str, lease_token: str, *, until: datetime) -> bool:
        params = {"until": c.utc(until, "until")}
        return await self._held(_RENEW, outbox_id, lease_token, params)

    async def complete(self, outbox_id: str, lease_token: str, *, now: datetime) -> bool:
        """One statement marks every row whose completion arrived while the previous one ran
        (group commit): the same answer per row as a statement of its own."""
        at = c.utc(now, "now")
        oid = c.as_uuid(outbox_id)
        if oid is None or not isinstance(lease_token, str):
            return False
        return await self._completions.submit((oid, lease_token, at))

    async def _complete_many(self, items: Sequence[tuple[Any, str, datetime]]) -> list[bool]:
        params = {
            "ids": [i[0] for i in items],
            "tokens": [i[1] for i in items],
            "nows": [i[2] for i in items],
        }
        done = {str(row[0]) for row in await self._all(_COMPLETE_MANY, params)}
        return [i[0] in done for i in items]

    async def reschedule(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        error: AttemptError,
        hold_until: datetime | None = None,
    ) -> bool:
        params = _reschedule_params(next_attempt_at, hold_until, [c.error_json(error)], spent=1)
        return await self._held(_RESCHEDULE, outbox_id, lease_token, params)

    async def snooze(
        self,
        outbox_id: str,
        lease_token: str,
        *,
        next_attempt_at: datetime,
        hold_until: datetime | None = None,
    ) -> bool:
        params = _reschedule_params(next_attempt_at, hold_until, [], spent=0)
        return await self._held(_RESCHEDULE, outbox_id, lease_token, params)

    async def _held(
        self, query: str, outbox_id: str, lease_token: str, params: dict[str, Any]
    ) -> bool:
        oid = c.as_uuid(outbox_id)
        if oid is None or not isinstance(lease_token, str):
            return False
        return await self._count(query, params | {"id": oid, "token": lease_token}) == 1

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
        params = {
            "now": at,
            "expires": at + c.positive(ttl, "ttl"),
            "code": ErrorCode(error_code).value,
            "message": c.bound(message),
            "error": json.dumps([] if error is None else [c.error_json(error)]),
            "new_id": c.new_id(self._ids),
        }
        oid = c.as_uuid(outbox_id)
        if oid is None or not isinstance(lease_token, str):
            return None
        row = await self._one(_MOVE_TO_DLQ, params | {"id": oid, "token": lease_token})
        if row is None:
            return None
        entry = _dlq(row)
        c.fire_alert(self._dlq_alert, entry.tenant_id, int(row[-1]), self._dlq_alert_threshold)
        return entry

    async def purge_done(self, *, older_than: datetime) -> int:
        return await self._purge(_PURGE_DONE, {"cutoff": c.utc(older_than, "older_than")})

    # -- fleet-wide tenant slots (FleetSlots) -------------------------------------------------

    async def slot_acquire(
        self, tenant_id: str, limit: int, *, now: datetime, until: datetime
    ) -> str | None:
        """One of the tenant's `limit` slots until `until` (a token for `slot_release`), or None
        when all are held. One statement when a slot is free; the slot rows are made once per
        (tenant, limit) and handle."""
        if (tenant_id, limit) not in self._slots_made:
            await self._count(_ENSURE_SLOTS, {"tenant": tenant_id, "limit": c.limit(limit)})
            self._slots_made.add((tenant_id, limit))
        token = c.new_id(self._ids)
        params = {
            "tenant": tenant_id,
            "limit": limit,
            "now": c.utc(now, "now"),
            "until": c.utc(until, "until"),
            "token": token,
        }
        return token if await self._one(_TAKE_SLOT, params) is not None else None

    async def slot_release(self, tenant_id: str, token: str) -> None:
        """Batched like `complete`: releases that arrive together share one statement."""
        await self._releases.submit((tenant_id, token))

    async def _release_many(self, items: Sequence[tuple[str, str]]) -> list[None]:
        params = {"tenants": [i[0] for i in items], "tokens": [i[1] for i in items]}
        await self._count(_FREE_SLOTS, params)
        return [None] * len(items)

    # -- dead-letter queue ---------------------------------------------------------------------

    async def dlq_list(
        self,
        flt: DlqFilter,
        *,
        now: datetime,
        after: DlqCursor | None = None,
        limit: int = 50,
    ) -> DlqPage:
        params: dict[str, Any] = {"now": c.utc(now, "now"), "limit": c.limit(limit) + 1}
        conds = [sql.SQL("expires_at > %(now)s")]
        if flt.tenant_id is not None:
            conds.append(sql.SQL("tenant_id = %(tenant)s"))
            params["tenant"] = flt.tenant_id
        if flt.workflow_name is not None:
            conds.append(sql.SQL("workflow_name = %(workflow)s"))
            params["workflow"] = flt.workflow_name
        if flt.error_code is not None:
            conds.append(sql.SQL("error_code = %(code)s"))
            params["code"] = ErrorCode(flt.error_code).value
        if after is not None:
            cursor_id = c.as_uuid(after.id)
            if cursor_id is None:
                raise InvalidInput(f"after.id is not a DLQ entry id: {after.id!r}")
            conds.append(sql.SQL("(created_at, id) < (%(after_at)s, %(after_id)s::uuid)"))
            params["after_at"] = c.utc(after.created_at, "after.created_at")
            params["after_id"] = cursor_id
        query = sql.SQL(
            "SELECT {cols} FROM n8n_dlq WHERE {conds}"
            " ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
        ).format(cols=sql.SQL(_DLQ), conds=sql.SQL(" AND ").join(conds))
        entries = [_dlq(r) for r in await self._all(query, params)]
        return c.page(entries, limit)

    async def dlq_get(self, entry_id: str, *, now: datetime) -> DlqEntry | None:
        at = c.utc(now, "now")
        eid = c.as_uuid(entry_id)
        if eid is None:
            return None
        row = await self._one(
            f"SELECT {_DLQ} FROM n8n_dlq WHERE id = %(id)s AND expires_at > %(now)s",
            {"id": eid, "now": at},
        )
        return None if row is None else _dlq(row)

    async def dlq_retry(self, entry_id: str, *, now: datetime) -> str | None:
        at = c.utc(now, "now")
        eid = c.as_uuid(entry_id)
        if eid is None:
            return None
        row = await self._one(_DLQ_RETRY, {"id": eid, "now": at, "new_id": c.new_id(self._ids)})
        return None if row is None else str(row[0])

    async def dlq_purge_expired(self, *, now: datetime) -> int:
        return await self._purge(_PURGE_DLQ, {"now": c.utc(now, "now")})

    async def dlq_depth(self, *, now: datetime) -> dict[tuple[str, ErrorCode], int]:
        rows = await self._all(
            "SELECT tenant_id, error_code, count(*) FROM n8n_dlq WHERE expires_at > %(now)s"
            " GROUP BY tenant_id, error_code",
            {"now": c.utc(now, "now")},
        )
        return {(r[0], ErrorCode(r[1])): int(r[2]) for r in rows}

    # -- inspection (StoreInspector: the harness's and tests' reads) ---------------------------

    async def applied_migrations(self) -> list[int]:
        rows = await self._all("SELECT version FROM reliability_migrations ORDER BY version", {})
        return [int(r[0]) for r in rows]

    async def is_processed(self, tenant_id: str, event_id: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM processed_events WHERE tenant_id = %(t)s AND event_id = %(e)s",
            {"t": tenant_id, "e": event_id},
        )
        return row is not None

    async def ledger_row(self, tenant_id: str) -> LedgerRow | None:
        row = await self._one(
            f"SELECT {_LEDGER} FROM stripe_event_ledger WHERE tenant_id = %(t)s", {"t": tenant_id}
        )
        return None if row is None else _ledger(row)

    async def outbox_rows(self, *, include_done: bool = False) -> list[OutboxRow]:
        where = "" if include_done else " WHERE done_at IS NULL"
        rows = await self._all(f"SELECT {_OUTBOX} FROM outbox{where} ORDER BY created_at, id", {})
        return [_outbox(r) for r in rows]

    async def delivered_keys(self) -> set[str]:
        rows = await self._all("SELECT idempotency_key FROM outbox WHERE done_at IS NOT NULL", {})
        return {r[0] for r in rows}

    async def dlq_rows(self) -> list[DlqEntry]:
        rows = await self._all(f"SELECT {_DLQ} FROM n8n_dlq ORDER BY created_at, id", {})
        return [_dlq(r) for r in rows]

    async def row_counts(self) -> dict[str, int]:
        query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES)
        return {str(name): int(n) for name, n in await self._all(query, {})}


def _columns(encoded: Sequence[c.EncodedDelivery]) -> dict[str, list[Any]]:
    return {
        "ids": [e.id for e in encoded],
        "tenants": [e.tenant_id for e in encoded],
        "workflows": [e.workflow for e in encoded],
        "payloads": [e.payload for e in encoded],
        "keys": [e.idempotency_key for e in encoded],
        "events": [e.event_id for e in encoded],
    }


def _reschedule_params(
    next_attempt_at: datetime,
    hold_until: datetime | None,
    errors: list[dict[str, Any]],
    *,
    spent: int,
) -> dict[str, Any]:
    return {
        "next": c.utc(next_attempt_at, "next_attempt_at"),
        "hold": None if hold_until is None else c.utc(hold_until, "hold_until"),
        "keep": hold_until is not None,
        "error": json.dumps(errors),
        "spent": spent,
    }
