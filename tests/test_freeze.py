"""virtual_clock with freezegun's wall in step: code that reads the wall follows virtual time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from harness import vclock
from harness.testing.freeze import frozen_wall
from harness.vclock import VirtualClock


def read_the_wall() -> dict[str, object]:
    """Code under test that reads the wall itself, every way Python offers."""
    return {
        "now": datetime.now(UTC),
        "naive": datetime.now(),
        "utcnow": datetime.utcnow(),
        "today": date.today(),
        "time": time.time(),
        "monotonic": time.monotonic(),
    }


def expected(clock: VirtualClock) -> dict[str, object]:
    now = clock.now()
    return {
        "now": now,
        "naive": now.replace(tzinfo=None),  # freezegun shows naive times in UTC
        "utcnow": now.replace(tzinfo=None),
        "today": now.date(),
        "time": pytest.approx(now.timestamp(), abs=1e-6),
        "monotonic": pytest.approx(now.timestamp(), abs=1e-6),
    }


@pytest.mark.virtual_clock(freeze=True)
async def test_datetime_now_in_user_code_advances_exactly_with_virtual_clock(
    virtual_clock: VirtualClock,
) -> None:
    assert read_the_wall() == expected(virtual_clock)
    start = virtual_clock.now()
    for step in (1.5, 0.000_001, 3600, 86_400 - 1.5, 7 * 86_400):
        before = read_the_wall()
        await asyncio.sleep(step)  # the loop jumps; the wall follows at once
        after = read_the_wall()
        assert after == expected(virtual_clock)
        assert after["now"] - before["now"] == timedelta(seconds=step)  # type: ignore[operator]
    assert virtual_clock.now() == start + timedelta(days=8, hours=1, microseconds=1)


@pytest.mark.virtual_clock(freeze=True)
async def test_blocking_moves_the_wall_and_the_loop_keeps_its_own_time(
    virtual_clock: VirtualClock,
) -> None:
    loop, start = virtual_clock.loop, virtual_clock.now()
    loop.block(90)  # what a sync client answered slowly does
    assert datetime.now(UTC) == start + timedelta(seconds=90)
    # The loop's time is its own, not freezegun's epoch seconds.
    assert loop.time() == virtual_clock.monotonic() == 90
    await asyncio.wait_for(asyncio.sleep(10), timeout=11)  # timeouts run on the loop's time
    assert datetime.now(UTC) == start + timedelta(seconds=100)


class TestAnotherStart:
    @pytest.fixture
    def virtual_clock_start(self) -> datetime:
        return datetime(2030, 6, 1, 23, 59, 30, tzinfo=UTC)

    @pytest.mark.virtual_clock(freeze=True)
    async def test_the_frozen_wall_starts_at_virtual_clock_start(
        self, virtual_clock: VirtualClock
    ) -> None:
        assert date.today() == date(2030, 6, 1)
        await asyncio.sleep(30)
        assert date.today() == date(2030, 6, 2)


async def test_without_the_option_the_wall_is_real(virtual_clock: VirtualClock) -> None:
    assert time.time.__module__ == "time"  # not freezegun's
    await asyncio.sleep(86_400)
    assert abs(datetime.now(UTC) - virtual_clock.now()) > timedelta(hours=1)


def test_frozen_wall_under_vclock_run_and_released_after() -> None:
    async def main(clock: VirtualClock) -> list[datetime]:
        seen = []
        with frozen_wall(clock):
            seen.append(datetime.now(UTC))
            await asyncio.sleep(3600)
            seen.append(datetime.now(UTC))
        await asyncio.sleep(3600)
        seen.append(clock.now())
        return seen

    start = datetime(2027, 3, 1, tzinfo=UTC)
    assert vclock.run(main, start=start) == [
        start,
        start + timedelta(hours=1),
        start + timedelta(hours=2),
    ]
    assert time.time.__module__ == "time"
