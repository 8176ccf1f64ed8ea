"""Persistence: the `Store` and `StoreInspector` contracts, two implementations, `open_store`.

`Store` is what the reliability layer calls; `StoreInspector` is what the harness and tests read
(whole tables, lookups the layer never makes). `PostgresStore` and `SqliteStore` implement both.

`open_store("sqlite:///relative.db")`, `open_store("sqlite:////abs/path.db")`,
`open_store("sqlite://:memory:")` or `open_store("postgresql://user@host/db", schema="x")`;
then `await store.migrate()` once before use, and `await store.close()` at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from reliability.store.base import (
    DEFAULT_DLQ_ALERT_THRESHOLD,
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_PROCESSED_RETENTION,
    MAX_ERROR_MESSAGE,
    TABLES,
    AcceptResult,
    AttemptError,
    DlqAlert,
    DlqCursor,
    DlqEntry,
    DlqFilter,
    DlqPage,
    FleetSlots,
    InvalidInput,
    LedgerRow,
    NewDelivery,
    OutboxRow,
    PayloadError,
    Store,
    StoreError,
    StoreInspector,
    StoreUnavailable,
)
from reliability.store.postgres import ConnectionCheck, PostgresStore
from reliability.store.sqlite import SqliteStore

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
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreInspector",
    "StoreUnavailable",
    "open_postgres",
    "open_store",
]

_MEMORY = ("sqlite://", "sqlite://:memory:", "sqlite:///:memory:")


def open_store(
    url: str,
    *,
    ids: Callable[[], str] | None = None,
    dlq_alert: DlqAlert | None = None,
    dlq_alert_threshold: int = DEFAULT_DLQ_ALERT_THRESHOLD,
    payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
    schema: str | None = None,
    min_size: int = 1,
    max_size: int = 8,
    pool_timeout: float = 10.0,
    application_name: str = "reliability",
    sqlite_synchronous: str = "FULL",
) -> PostgresStore | SqliteStore:
    """Open (not migrate) the store a URL names.

    `sqlite:///x.db` is the relative path `x.db` and `sqlite:////tmp/x.db` the absolute
    `/tmp/x.db` (the SQLAlchemy convention). For Postgres, `schema` isolates the store: it
    is set as `search_path` on every pooled connection and created by `migrate()`. Pool
    sizes, `pool_timeout` (seconds to wait for a connection) and `application_name` apply to
    Postgres only, `sqlite_synchronous` (SQLite's `PRAGMA synchronous`) to SQLite only.
    `ids` mints UUID strings (default: uuid4), e.g. seeded for a simulation.
    """
    common: dict[str, Any] = {
        "ids": ids,
        "dlq_alert": dlq_alert,
        "dlq_alert_threshold": dlq_alert_threshold,
        "payload_limit": payload_limit,
    }
    if not isinstance(url, str):
        raise InvalidInput(f"store url must be a str, got {type(url).__name__}")
    if url in _MEMORY:
        return SqliteStore(":memory:", synchronous=sqlite_synchronous, **common)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return SqliteStore(path, synchronous=sqlite_synchronous, **common)
    if url.startswith(("postgresql://", "postgres://")):
        return open_postgres(
            url,
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            pool_timeout=pool_timeout,
            application_name=application_name,
            **common,
        )
    scheme = url.split(":", 1)[0] if ":" in url else url[:20]
    raise InvalidInput(
        f"store url: unknown scheme {scheme!r}; use sqlite:///path.db, sqlite://:memory: "
        "or postgresql://..."
    )


def open_postgres(
    url: str,
    *,
    schema: str | None = None,
    min_size: int = 1,
    max_size: int = 8,
    pool_timeout: float = 10.0,
    application_name: str = "reliability",
    **store_options: Any,
) -> PostgresStore:
    """A `PostgresStore` on a new (lazily opened) pool of autocommit connections."""
    if not 1 <= min_size <= max_size:
        raise InvalidInput(
            f"pool sizes must satisfy 1 <= min_size <= max_size, got {min_size}, {max_size}"
        )
    if schema is not None and (not schema or "\x00" in schema):
        raise InvalidInput(f"schema must be a non-empty name without NUL, got {schema!r}")

    async def configure(conn: AsyncConnection[TupleRow]) -> None:
        if schema is not None:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

    check = ConnectionCheck()
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=pool_timeout,
        kwargs={"autocommit": True, "application_name": application_name},
        configure=configure,
        # A connection PostgreSQL terminated (a restart, pg_terminate_backend, a network blip)
        # is found and replaced before it is handed out, not when a write after a 2xx fails;
        # checked when it may be stale only (see ConnectionCheck), not on every checkout.
        check=check.check,
        reset=check.reset,
        open=False,
        name=f"reliability-{schema or 'public'}",
    )
    return PostgresStore(pool, schema=schema, connection_check=check, **store_options)
