"""freezegun kept in step with virtual time, for code that reads the wall itself.

    with frozen_wall(clock):             # clock: a harness.vclock.VirtualClock
        await asyncio.sleep(86_400)      # virtual: returns at once
        datetime.now(UTC) == clock.now() # True: a day later, to the microsecond

Inside, `datetime.now()`, `datetime.utcnow()`, `date.today()`, `time.time()`, `time.gmtime()`,
`time.localtime()` and `time.strftime()` read `clock.now()`, following every jump of the
virtual loop; `time.monotonic()` and `time.perf_counter()` read the same instant in seconds
since the epoch, so their differences are virtual durations. The loop's own timing stays the
loop's: `VirtualEventLoop.time()` is not freezegun's, and other event loops keep real time.

Limits, which are freezegun's:

- naive `datetime.now()` and `time.localtime()` show UTC (the local zone is not applied);
- C extensions read the system clock directly and do not see the frozen time (uvloop, the
  database driver's own timeouts, any library timing in C);
- the patch is process-wide: other threads see the frozen wall too (freezegun's default ignore
  list, which `ignore` extends, keeps `threading`, `queue` and a few others on real time);
- a name bound to the real function where freezegun cannot find it (a default argument,
  a closure made before freezing) keeps reading the real clock.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

from harness.vclock import VirtualClock

__all__ = ["MISSING", "frozen_wall"]

MISSING: Final = (
    "needs freezegun, which is not installed: pip install 'reliability-harness[freezegun]'"
)


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


@contextmanager
def frozen_wall(clock: VirtualClock, *, ignore: Sequence[str] = ()) -> Iterator[None]:
    """Freeze the wall at `clock.now()` and move it with every move of virtual time.

    `ignore` names module prefixes that keep the real clock (added to freezegun's defaults).
    Raises `ModuleNotFoundError` naming the extra when freezegun is not installed.
    """
    if importlib.util.find_spec("freezegun") is None:
        raise ModuleNotFoundError(f"frozen_wall {MISSING}", name="freezegun")
    import freezegun

    # real_asyncio: event loops other than the virtual one (servers on threads) keep real time.
    freezer = freezegun.freeze_time(_naive_utc(clock.now()), ignore=list(ignore), real_asyncio=True)
    factory = freezer.start()

    def follow(_t: float) -> None:
        factory.move_to(_naive_utc(clock.now()))

    stop_following = clock.loop.watch_time(follow)
    try:
        yield
    finally:
        stop_following()
        freezer.stop()
