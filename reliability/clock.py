"""Time, injected: every policy asks a `Clock`, none reads the wall itself.

Scenarios swap `SystemClock` for a virtual one and run days of simulated time in seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


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
