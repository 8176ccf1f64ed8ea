"""pytest fixtures for virtual time: an async test asks for `virtual_clock` and sleeps for free.

    async def test_ttl(virtual_clock: VirtualClock) -> None:
        await virtual_clock.sleep(86_400)  # returns at once; monotonic() moved a day

Such a test must run on a `VirtualEventLoop`. pytest-asyncio (>= 1.4) builds each test's loop
from the `pytest_asyncio_loop_factories` hook, asked once per test item; this plugin answers
"virtual" for items whose fixture closure contains `virtual_clock` (so async fixtures of that
test share the virtual loop) and, as a last resort, plain `asyncio.new_event_loop` for all
others, which is the loop they would have had anyway. Another plugin's answer for other tests
still wins, because ours for them comes last. A sync test cannot use `virtual_clock` (there is
no loop to put it on): it calls `harness.vclock.run(...)` instead.

Override the `virtual_clock_start` fixture to change the wall instant the clock starts at.

For code that reads the wall itself (`datetime.now()`, `time.time()`), `virtual_clock` can keep
freezegun's frozen time in step with virtual time (`harness.testing.freeze`): per test with
`@pytest.mark.virtual_clock(freeze=True)`, or for a whole directory by overriding the
`virtual_clock_freeze` fixture in its conftest.py. It is off by default: the patch is
process-wide, costs a scan of the loaded modules per test, and moves the wall of every thread.
Without pytest-asyncio >= 1.4 (the `pytest` extra) this module still loads: only the tests that
use `virtual_clock` fail, with a message naming the extra.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

import pytest

from harness.testing.asyncio_support import async_fixture
from harness.vclock import DEFAULT_START, VirtualClock, VirtualEventLoop

__all__ = ["virtual_clock", "virtual_clock_freeze", "virtual_clock_start"]

_FIXTURE = "virtual_clock"
_OPTIONS = frozenset({"freeze"})
_VIRTUAL_FACTORY = "virtual"
_DEFAULT_FACTORY = "asyncio"

_LoopFactories = Mapping[str, Callable[[], asyncio.AbstractEventLoop]]


@pytest.fixture
def virtual_clock_start() -> datetime:
    """The aware UTC instant `virtual_clock.now()` shows when the test starts."""
    return DEFAULT_START


@pytest.fixture
def virtual_clock_freeze() -> bool:
    """Whether `virtual_clock` keeps freezegun's wall in step (a marker on the test wins)."""
    return False


@async_fixture()
async def virtual_clock(
    request: pytest.FixtureRequest, virtual_clock_start: datetime, virtual_clock_freeze: bool
) -> AsyncIterator[VirtualClock]:
    """A `VirtualClock` on the test's own event loop, which is a `VirtualEventLoop`."""
    freeze = _freeze_option(request, default=virtual_clock_freeze)
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualEventLoop):
        pytest.fail(
            f"virtual_clock needs the test to run on a VirtualEventLoop, but the loop is "
            f"{type(loop).__name__}: use it from an async test with the default function loop "
            "scope (a sync test calls harness.vclock.run(...) instead), and make sure no other "
            "pytest_asyncio_loop_factories hook answers first for this test",
            pytrace=False,
        )
    clock = VirtualClock(loop, start=virtual_clock_start)
    if not freeze:
        yield clock
        return
    from harness.testing.freeze import MISSING, frozen_wall

    if importlib.util.find_spec("freezegun") is None:
        pytest.fail(f"virtual_clock(freeze=True) {MISSING}", pytrace=False)
    with frozen_wall(clock):
        yield clock


def _freeze_option(request: pytest.FixtureRequest, *, default: bool) -> bool:
    marker = request.node.get_closest_marker(_FIXTURE)
    if marker is None:
        return default
    unknown = set(marker.kwargs) - _OPTIONS
    if marker.args or unknown or not isinstance(marker.kwargs.get("freeze", default), bool):
        raise pytest.UsageError(
            f"{request.node.nodeid}: use @pytest.mark.virtual_clock(freeze=True|False)"
        )
    freeze: bool = marker.kwargs.get("freeze", default)
    return freeze


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> _LoopFactories | None:
    """Tests that use `virtual_clock` (directly or through a fixture) run on virtual time."""
    if _FIXTURE in getattr(item, "fixturenames", ()):
        return {_VIRTUAL_FACTORY: VirtualEventLoop}
    return None


class _DefaultLoopFactory:
    """The fallback answer: once any hook implementation exists, pytest-asyncio needs one."""

    @pytest.hookimpl(trylast=True, optionalhook=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> _LoopFactories:
        return {_DEFAULT_FACTORY: asyncio.new_event_loop}


def pytest_configure(config: pytest.Config) -> None:
    name = f"{__name__}.default-loop"
    if not config.pluginmanager.has_plugin(name):
        config.pluginmanager.register(_DefaultLoopFactory(), name)
