"""Time, injected: every policy asks a `Clock`, none reads the wall itself.

Scenarios swap `SystemClock` for a virtual one and run days of simulated time in seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, runtime_checkable

__all__ = ["LONGEST", "Clock", "SystemClock", "span"]

LONGEST: Final = timedelta(days=36_500)
"""The longest delay, lease or TTL the layer uses; longer settings are clamped to it. The
config accepts any finite number, and a time past year 9999 cannot even be computed
(`OverflowError`), let alone stored."""


def span(seconds: float) -> timedelta:
    """`seconds` as a timedelta clamped to [0, LONGEST]: never raises on a huge value."""
    if not seconds > 0:  # also NaN
        return timedelta(0)
    return timedelta(seconds=min(seconds, LONGEST.total_seconds()))


@runtime_checkable
class Clock(Protocol):
    """The three things the reliability layer needs to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The wall time, timezone-aware UTC; used for anything stored or shown."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for `seconds` on this clock."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `datetime.now(UTC)` and `asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"
