"""A PostgreSQL for tests: the variable, else testcontainers, else an embedded server.

The server is chosen in this order: `RELIABILITY_TEST_DATABASE_URL` when set; else a
testcontainers PostgreSQL when a Docker engine answers; else an embedded PostgreSQL 16 from the
`pgserver` package (`harness.live.embedded`). Nothing starts until a test asks for `pg_url`
(this plugin is loaded into every pytest run of an environment that has the package). The
embedded server lives in one temporary directory per run, shared by the pytest-xdist workers
(the first to need it starts it, the others join it) and stopped by the controlling process at
the end. The pytest header names the choice.

Each test gets its own schema (created fresh, dropped after), so the suite runs in parallel under
pytest-xdist against one server. Fixtures: `pg_url` (session), `pg_database` (per test) and
`store` (per test, parametrised: a `SqliteStore` on a temporary file and a `PostgresStore`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from psycopg import sql

from harness.live.embedded import EXTRA, EmbeddedUnavailable, start_embedded, stop_embedded
from harness.pgschema import create_schema, drop_schema
from harness.testing.asyncio_support import async_fixture
from reliability.store import PostgresStore, SqliteStore, Store, open_postgres

__all__ = [
    "ENV_VAR",
    "PgDatabase",
    "PgUnavailable",
    "choose_server",
    "create_schema",
    "drop_schema",
    "pg_database",
    "pg_url",
    "resolve_database_url",
    "store",
    "store_factory",
]

ENV_VAR: Final = "RELIABILITY_TEST_DATABASE_URL"
_IMAGE: Final = "postgres:16-alpine"
_RUN_DIR: Final = pytest.StashKey[Path]()
_WORKER_OPTION: Final = "reliability_harness_pg_dir"


class PgUnavailable(RuntimeError):
    """No PostgreSQL for the tests: no variable, no Docker engine, no embedded server."""


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
        import docker  # type: ignore[import-untyped,unused-ignore]  # testcontainers' dependency

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _embedded_installed() -> bool:
    return importlib.util.find_spec("pgserver") is not None


def choose_server(
    env: Mapping[str, str],
    *,
    docker_answers: Callable[[], bool] = _docker_answers,
    embedded_installed: Callable[[], bool] = _embedded_installed,
) -> str:
    """Which server a run uses: `url`, `testcontainers`, `embedded` or `none` (in that order)."""
    if env.get(ENV_VAR, "").strip():
        return "url"
    if docker_answers():
        return "testcontainers"
    return "embedded" if embedded_installed() else "none"


def _unavailable_message() -> str:
    return (
        f"no PostgreSQL for the tests: set {ENV_VAR} (e.g. "
        f"{ENV_VAR}=postgresql://postgres@127.0.0.1:5432/test), start a Docker engine for "
        f"testcontainers, or install the embedded server: pip install "
        f"'reliability-harness[{EXTRA}]'"
    )


def resolve_database_url(
    env: Mapping[str, str] | None = None,
    *,
    docker_answers: Callable[[], bool] = _docker_answers,
    start_container: Callable[[], str] | None = None,
    embedded_installed: Callable[[], bool] = _embedded_installed,
    embedded_dir: Path | None = None,
    start_embedded_server: Callable[[Path], str] | None = None,
) -> str:
    """The server URL for this run (see the module docstring for the order); raises
    `PgUnavailable` when there is none. The embedded server keeps its data in `embedded_dir`
    (default: a new temporary directory)."""
    environ = os.environ if env is None else env
    kind = choose_server(
        environ, docker_answers=docker_answers, embedded_installed=embedded_installed
    )
    if kind == "url":
        return environ[ENV_VAR].strip()
    if kind == "testcontainers":
        return (start_container or _start_container)()
    if kind == "none":
        raise PgUnavailable(_unavailable_message())
    where = embedded_dir or Path(tempfile.mkdtemp(prefix="reliability-harness-pg-"))
    try:
        return (start_embedded_server or _start_embedded)(where / "data")
    except EmbeddedUnavailable as exc:
        raise PgUnavailable(f"{_unavailable_message()}\n{exc}") from exc


def _start_embedded(data_dir: Path) -> str:
    return start_embedded(data_dir).url


_container: Any = None


def _start_container() -> str:
    global _container
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise PgUnavailable(
            f"a Docker engine answers but testcontainers is not installed; "
            f"pip install 'reliability-harness[testcontainers]' or set {ENV_VAR}"
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


# -- one run, several processes: where the embedded server lives and who stops it ------------


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Name (not create) the run's directory for the embedded server; workers get it from the
    controller, so the whole run shares one server."""
    if _is_worker(config):
        given = config.workerinput.get(_WORKER_OPTION)  # type: ignore[attr-defined]
        if given:
            config.stash[_RUN_DIR] = Path(given)
            return
    name = f"reliability-harness-pg-{uuid.uuid4().hex[:12]}"
    config.stash[_RUN_DIR] = Path(tempfile.gettempdir()) / name


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: hand the run's directory to each worker."""
    node.workerinput[_WORKER_OPTION] = str(node.config.stash[_RUN_DIR])


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controlling process stops the embedded server (if one was started) and removes it."""
    if _is_worker(config) and _WORKER_OPTION in config.workerinput:  # type: ignore[attr-defined]
        return
    where = config.stash.get(_RUN_DIR, None)
    if where is not None and where.exists():
        stop_embedded(where / "data")
        shutil.rmtree(where, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    kind = choose_server(os.environ)
    if kind == "url":
        return f"reliability-harness PostgreSQL: {ENV_VAR}"
    if kind == "testcontainers":
        return f"reliability-harness PostgreSQL: testcontainers ({_IMAGE}), started on first use"
    if kind == "embedded":
        return (
            "reliability-harness PostgreSQL: embedded PostgreSQL 16 (pgserver), started on "
            f"first use in {config.stash[_RUN_DIR]}"
        )
    return f"reliability-harness PostgreSQL: none ({_unavailable_message()})"


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The server URL for this test session (a container is stopped at the session's end, the
    embedded server when the run ends)."""
    try:
        url = resolve_database_url(embedded_dir=request.config.stash.get(_RUN_DIR, None))
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


@async_fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
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


@async_fixture()
async def store(store_factory: StoreFactory) -> Store:
    """A migrated store of each kind: the contract suite runs once per implementation."""
    return await store_factory()
