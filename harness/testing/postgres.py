"""A PostgreSQL for tests: from `RELIABILITY_TEST_DATABASE_URL`, else testcontainers, else fail.

Each test gets its own schema (created fresh, dropped after), so the suite runs in parallel under
pytest-xdist against one server. Fixtures: `pg_url` (session), `pg_database` (per test) and
`store` (per test, parametrised: a `SqliteStore` on a temporary file and a `PostgresStore`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reliability.store import PostgresStore, SqliteStore, Store, open_postgres

__all__ = [
    "ENV_VAR",
    "PgDatabase",
    "PgUnavailable",
    "create_schema",
    "drop_schema",
    "pg_database",
    "pg_url",
    "resolve_database_url",
    "store",
    "store_factory",
]

ENV_VAR = "RELIABILITY_TEST_DATABASE_URL"
_IMAGE = "postgres:16-alpine"


class PgUnavailable(RuntimeError):
    """No PostgreSQL for the tests: neither the variable nor a Docker engine."""


@dataclass(frozen=True, slots=True)
class PgDatabase:
    """One test's database: a server URL and a schema nobody else uses."""

    url: str
    schema: str

    def open_store(self, **options: Any) -> PostgresStore:
        """A `PostgresStore` on this schema unless `schema=` says otherwise (not migrated)."""
        return open_postgres(self.url, **{"schema": self.schema, **options})

    def connect(self) -> psycopg.Connection[Any]:
        """A plain autocommit connection with `search_path` on the schema (for assertions)."""
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]  # testcontainers' own dependency

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def resolve_database_url(
    env: Mapping[str, str] | None = None,
    *,
    docker_answers: Callable[[], bool] = _docker_answers,
    start_container: Callable[[], str] | None = None,
) -> str:
    """The variable when set; else a testcontainers Postgres when Docker answers; else raise."""
    url = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    if url:
        return url
    if docker_answers():
        return (start_container or _start_container)()
    raise PgUnavailable(
        f"no PostgreSQL for the tests: set {ENV_VAR} (e.g. "
        f"{ENV_VAR}=postgresql://postgres@127.0.0.1:5432/test), or start a Docker engine so "
        "testcontainers can run one (pip install 'reliability-harness[testcontainers]')"
    )


_container: Any = None


def _start_container() -> str:
    global _container
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise PgUnavailable(
            f"a Docker engine answers but testcontainers is not installed; install the "
            f"'testcontainers' extra or set {ENV_VAR}"
        ) from exc
    container = PostgresContainer(_IMAGE, driver=None)
    container.start()
    _container = container
    return str(container.get_connection_url())


def _stop_container() -> None:
    global _container
    if _container is not None:
        container, _container = _container, None
        container.stop()


def create_schema(url: str, prefix: str = "rt") -> str:
    """Create a uniquely named empty schema and return its name."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema


def drop_schema(url: str, schema: str) -> None:
    """Drop a schema and everything in it (waits at most 10 s for locks)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The server URL for this test session (a container is stopped at the session's end)."""
    try:
        url = resolve_database_url()
    except PgUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        _stop_container()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[PgDatabase]:
    """A fresh schema for one test, dropped afterwards."""
    schema = create_schema(pg_url)
    try:
        yield PgDatabase(pg_url, schema)
    finally:
        drop_schema(pg_url, schema)


StoreFactory = Callable[..., Awaitable[SqliteStore | PostgresStore]]
"""`await make(**options)`: another migrated handle on the test's database (options as in
`open_store`, e.g. `ids=`, `dlq_alert=`, `dlq_alert_threshold=`)."""


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens migrated stores of one kind on one database; all are closed after the test."""
    opened: list[SqliteStore | PostgresStore] = []
    db: PgDatabase | None = None
    if request.param == "postgres":
        db = request.getfixturevalue("pg_database")

    async def make(**options: Any) -> SqliteStore | PostgresStore:
        made: SqliteStore | PostgresStore
        if db is None:
            made = SqliteStore(str(tmp_path / "store.db"), **options)
        else:
            made = db.open_store(**{"max_size": 4, **options})
        opened.append(made)
        await made.migrate()
        return made

    try:
        yield make
    finally:
        for made in opened:
            await made.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    """A migrated store of each kind: the contract suite runs once per implementation."""
    return await store_factory()
