"""Helpers for the scenario suites: small scenarios built from dicts, run to a verdict."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from harness.sim.scenario import Scenario, parse_scenario
from harness.testing.postgres import PgDatabase
from harness.vclock import VirtualClock
from reliability.store import SqliteStore, Store

BASE: Mapping[str, Any] = {
    "name": "suite",
    "seed": 1,
    "tenants": [{"id": "tenant-{i}", "count": 3, "config": {"concurrency_limit": 2}}],
    "traffic": {"events": 150, "duration": 600},
    "settle": 900,
}


def make(**overrides: Any) -> Scenario:
    """A small scenario: BASE with top-level keys replaced."""
    return parse_scenario({**BASE, **overrides}, source="<suite>")


@pytest.fixture
def scenario_factory() -> Callable[..., Scenario]:
    return make


class HeldStore:
    """A store whose every call holds virtual time still (`real_io`): Postgres is real I/O."""

    def __init__(self, inner: Any, loop_clock: Any) -> None:
        self._inner = inner
        self._clock = loop_clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            with self._clock.real_io():
                return await attr(*args, **kwargs)

        return call


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sim_store(
    request: pytest.FixtureRequest, virtual_clock: VirtualClock
) -> AsyncIterator[Store]:
    """A migrated store of each kind on the virtual clock (Postgres calls hold time still)."""
    store: Any
    if request.param == "sqlite":
        store = SqliteStore(":memory:")
    else:
        db: PgDatabase = request.getfixturevalue("pg_database")
        store = HeldStore(db.open_store(), virtual_clock)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()
