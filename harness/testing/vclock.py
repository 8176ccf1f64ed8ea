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
Without pytest-asyncio >= 1.4 (the `pytest` extra) this module still loads: only the tests that
use `virtual_clock` fail, with a message naming the extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime

import pytest

from harness.testing.asyncio_support import async_fixture
from harness.vclock import DEFAULT_START, VirtualClock, VirtualEventLoop

__all__ = ["virtual_clock", "virtual_clock_start"]

_FIXTURE = "virtual_clock"
_VIRTUAL_FACTORY = "virtual"
_DEFAULT_FACTORY = "asyncio"

_LoopFactories = Mapping[str, Callable[[], asyncio.AbstractEventLoop]]


@pytest.fixture
def virtual_clock_start() -> datetime:
    """The aware UTC instant `virtual_clock.now()` shows when the test starts."""
    return DEFAULT_START


@async_fixture()
async def virtual_clock(virtual_clock_start: datetime) -> VirtualClock:
    """A `VirtualClock` on the test's own event loop, which is a `VirtualEventLoop`."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualEventLoop):
        pytest.fail(
            f"virtual_clock needs the test to run on a VirtualEventLoop, but the loop is "
            f"{type(loop).__name__}: use it from an async test with the default function loop "
            "scope (a sync test calls harness.vclock.run(...) instead), and make sure no other "
            "pytest_asyncio_loop_factories hook answers first for this test",
            pytrace=False,
        )
    return VirtualClock(loop, start=virtual_clock_start)


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
