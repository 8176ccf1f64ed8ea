"""Fixtures for the service tests: apps on Postgres with an n8n stand-in, a live server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from service_support import LiveServer, ManualClock, N8nStandIn, Service
from starlette.applications import Starlette

from harness.testing.postgres import PgDatabase, pg_database, pg_url
from reliability.app import create_app
from reliability.config import Settings

__all__ = ["pg_database", "pg_url"]


@pytest.fixture
def n8n() -> N8nStandIn:
    return N8nStandIn()


@dataclass
class AppUnderTest:
    app: Starlette
    client: httpx.AsyncClient
    db: PgDatabase


@pytest.fixture
async def make_app(
    pg_database: PgDatabase,
) -> AsyncIterator[Callable[..., Any]]:
    """`await make_app(settings, transport)`: a migrated app on the test's schema, with client."""
    opened: list[tuple[Starlette, httpx.AsyncClient]] = []

    async def make(settings: Settings, transport: httpx.AsyncBaseTransport) -> AppUnderTest:
        store = pg_database.open_store(max_size=4)
        await store.migrate()
        app = create_app(settings, store, transport=transport)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service.test"
        )
        opened.append((app, client))
        return AppUnderTest(app, client, pg_database)

    try:
        yield make
    finally:
        for app, client in opened:
            await client.aclose()
            await app.state.service.dispatcher.aclose()
            await app.state.service.store.close()


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(build: Callable[[], Starlette], **config: Any) -> LiveServer:
        server = LiveServer(build, **config).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
async def make_service(pg_database: PgDatabase) -> Any:
    made: list[Service] = []

    async def make(
        settings: Settings, n8n: N8nStandIn, clock: ManualClock | None = None
    ) -> Service:
        store = pg_database.open_store(max_size=4)
        await store.migrate()
        clock = clock or ManualClock()
        app = create_app(settings, store, clock, transport=n8n.transport, instance=f"i{len(made)}")
        service = Service(app, store, clock)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close()
