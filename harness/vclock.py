"""Virtual time that keeps concurrency: an asyncio loop whose clock jumps instead of waiting.

`VirtualEventLoop` is a real selector loop: tasks, futures, queues and timeouts behave exactly
as asyncio schedules them. Only the clock differs: when no callback is ready and the loop would
block until its next timer, it sets virtual time to that timer's instant and goes on. A day of
sleeps runs in milliseconds, and the same program always runs the same way.

Real I/O (a socket to Postgres, a thread) takes real time the virtual clock knows nothing about;
code doing it holds time still with `loop.real_io()` / `clock.real_io()`, during which the loop
waits for the I/O for real and does not jump. Work sent to an executor holds time by itself.
"""

from __future__ import annotations

import asyncio
import collections
import math
import selectors
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = [
    "DEFAULT_START",
    "ManualClock",
    "VirtualClock",
    "VirtualDeadlineExceeded",
    "VirtualDeadlock",
    "VirtualEventLoop",
    "VirtualTimeError",
    "run",
]

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""The wall instant a virtual or manual clock shows at virtual time zero unless told otherwise."""

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_SHUTDOWN_GRACE_ITERATIONS: Final = 100_000
_SELF_PIPE_POLL_MASK: Final = 63  # poll the self-pipe every 64 iterations
_MAX_TASKS_SHOWN: Final = 5


class VirtualTimeError(RuntimeError):
    """A virtual-time run cannot go on; the message says why and where it stood."""


class VirtualDeadlineExceeded(VirtualTimeError):
    """The run passed its virtual-time or loop-iteration limit: a runaway scenario."""


class VirtualDeadlock(VirtualTimeError):
    """Nothing is ready, no timer is pending and no real I/O is held: nothing can ever happen."""


def _aware_utc(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {when!r}")
    return when.astimezone(UTC)


def _check_seconds(seconds: float, name: str) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {seconds!r}")
    return seconds


class _RealIOHold:
    """Holds virtual time still while real I/O is in flight (a counter on the loop)."""

    __slots__ = ("_loop",)

    def __init__(self, loop: VirtualEventLoop) -> None:
        self._loop = loop

    def __enter__(self) -> None:
        self._loop.begin_real_io()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.end_real_io()

    async def __aenter__(self) -> None:
        self._loop.begin_real_io()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.end_real_io()


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the loop's real selector: counts registered files and routes `select` to the loop."""

    def __init__(self, real: selectors.BaseSelector) -> None:
        self.real = real
        self.registered = 0
        self.select_hook: Callable[[float | None], list[tuple[selectors.SelectorKey, int]]] = (
            real.select
        )

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        key = self.real.register(fileobj, events, data)
        self.registered += 1
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        key = self.real.unregister(fileobj)
        self.registered -= 1
        return key

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self.real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self.select_hook(timeout)

    def close(self) -> None:
        self.real.close()

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self.real.get_map()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time, starting at 0.0.

    Whenever the loop would block waiting for its next timer, virtual time jumps to that timer.
    While `real_io()` holds are active it waits for real I/O instead and time stands still.
    `max_time` (virtual seconds since start) and `max_iterations` stop a runaway run with
    `VirtualDeadlineExceeded`; a loop that can never make progress raises `VirtualDeadlock`.
    """

    # Attributes of asyncio.BaseEventLoop that typeshed does not declare.
    _ready: collections.deque[asyncio.Handle]
    _scheduled: list[asyncio.TimerHandle]

    def __init__(self, *, max_time: float | None = None, max_iterations: int | None = None) -> None:
        self._now = 0.0
        self._io_holds = 0
        self._iterations = 0
        self._jumps = 0
        self._watchers: tuple[Callable[[float], None], ...] = ()
        self._max_time = math.inf
        self._max_iterations = math.inf
        self.set_limits(max_time=max_time, max_iterations=max_iterations)
        self._files = selector = _VirtualSelector(selectors.DefaultSelector())
        self._real_select = selector.real.select
        super().__init__(selector)
        selector.select_hook = self._virtual_select

    def time(self) -> float:
        """The virtual time in seconds: 0.0 at creation, moved by jumps to timers and `block`."""
        return self._now

    def block(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass at once, as a call blocking the loop's thread for
        that long would: nothing runs meanwhile, and timers that fell due run late, next.

        For code that cannot yield, such as a sync HTTP client answered by a fake with latency:
        time moves the way real blocking moves it, where waiting for real would stall the run.
        """
        if not _check_seconds(seconds, "seconds") >= 0:
            raise ValueError(f"cannot block for a negative duration: {seconds!r}")
        if self._now + seconds > self._max_time:
            raise VirtualDeadlineExceeded(
                self._describe(f"blocking {seconds:.6f}s passes max_time={self._max_time:.6f}s")
            )
        if seconds > 0:
            self._now += seconds
            self._moved()

    def watch_time(self, watcher: Callable[[float], None]) -> Callable[[], None]:
        """Call `watcher(t)` whenever virtual time moves (a jump or `block`), with the new time;
        returns the function that stops watching. Used to keep a frozen wall in step."""
        self._watchers = (*self._watchers, watcher)

        def stop() -> None:
            self._watchers = tuple(w for w in self._watchers if w is not watcher)

        return stop

    def _moved(self) -> None:
        for watcher in self._watchers:
            watcher(self._now)

    @property
    def iterations(self) -> int:
        """Loop iterations so far (one per poll)."""
        return self._iterations

    @property
    def jumps(self) -> int:
        """How many times virtual time jumped forward to the next timer."""
        return self._jumps

    @property
    def io_holds(self) -> int:
        """Active `real_io()` holds (plus executor jobs in flight); time jumps only at zero."""
        return self._io_holds

    @property
    def max_time(self) -> float | None:
        """Virtual time past which the loop raises `VirtualDeadlineExceeded`, or None."""
        return None if math.isinf(self._max_time) else self._max_time

    @property
    def max_iterations(self) -> int | None:
        """Iteration count past which the loop raises `VirtualDeadlineExceeded`, or None."""
        return None if math.isinf(self._max_iterations) else int(self._max_iterations)

    def set_limits(
        self, *, max_time: float | None = None, max_iterations: int | None = None
    ) -> None:
        """Set (or clear, with None) the runaway guards: absolute virtual time and iterations."""
        if max_time is not None and not (_check_seconds(max_time, "max_time") >= 0):
            raise ValueError(f"max_time must be >= 0, got {max_time!r}")
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations!r}")
        self._max_time = math.inf if max_time is None else float(max_time)
        self._max_iterations = math.inf if max_iterations is None else max_iterations

    def real_io(self) -> _RealIOHold:
        """Hold virtual time still while real I/O runs: `async with loop.real_io(): ...`.

        Also usable as a plain `with`. Holds nest (a counter); while any is active, the loop
        polls for real with the real timeout and never jumps. Interleaving of concurrent real
        I/O follows real completion order, which only the I/O itself can make deterministic.
        """
        return _RealIOHold(self)

    def begin_real_io(self) -> None:
        """Hold virtual time still until the matching `end_real_io` (what `real_io` does)."""
        self._io_holds += 1

    def end_real_io(self) -> None:
        self._io_holds -= 1

    def run_in_executor(
        self,
        executor: Executor | None,
        func: Callable[[*_Ts], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """As asyncio's, but virtual time stands still until the job is done (it is real work)."""
        future = super().run_in_executor(executor, func, *args)
        self._io_holds += 1
        future.add_done_callback(self._release_hold)
        return future

    def _release_hold(self, _future: asyncio.Future[Any]) -> None:
        self._io_holds -= 1

    async def shutdown_default_executor(self, *timeout: float) -> None:
        """As asyncio's, holding time still: the shutdown thread reports back for real."""
        with self.real_io():
            await super().shutdown_default_executor(*timeout)

    def _virtual_select(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        self._iterations = iterations = self._iterations + 1
        if iterations > self._max_iterations:
            raise VirtualDeadlineExceeded(
                self._describe(f"loop passed max_iterations={self.max_iterations}")
            )
        if self._io_holds:
            return self._real_select(timeout)
        # Poll real I/O without blocking when there may be some: always when files other than
        # the loop's self-pipe are registered, else now and then (signals, thread wake-ups).
        if self._files.registered > 1 or not iterations & _SELF_PIPE_POLL_MASK:
            events = self._real_select(0)
            if events or timeout == 0:
                return events
        elif timeout == 0:
            return []
        # The loop would block until its next timer: jump there instead.
        if self._ready:  # appended by another thread since the timeout was computed
            return []
        scheduled = self._scheduled
        if not scheduled:
            raise VirtualDeadlock(
                self._describe(
                    "deadlock: no callback is ready, no timer is pending and no real I/O is "
                    "held (wrap real I/O in `async with loop.real_io():`)"
                )
            )
        when = scheduled[0].when()
        if when > self._max_time:
            raise VirtualDeadlineExceeded(
                self._describe(
                    f"next timer at t={when:.6f}s is past max_time={self._max_time:.6f}s"
                )
            )
        if when > self._now:
            self._now = when
            self._jumps += 1
            if self._watchers:
                self._moved()
        return []

    def _describe(self, what: str) -> str:
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        shown = sorted(repr(t) for t in tasks)[:_MAX_TASKS_SHOWN]
        more = f" (+{len(tasks) - len(shown)} more)" if len(tasks) > len(shown) else ""
        return (
            f"virtual time: {what}; at t={self._now:.6f}s after {self._iterations} iterations, "
            f"{len(self._scheduled)} timers pending, {len(tasks)} unfinished tasks{more}: "
            + "; ".join(shown)
        )

    def arm_shutdown_grace(self) -> None:
        """After a guard tripped: let cancellation run, still bounded in iterations."""
        self._max_time = math.inf
        self._max_iterations = self._iterations + _SHUTDOWN_GRACE_ITERATIONS


class VirtualClock:
    """A `reliability.clock.Clock` on a `VirtualEventLoop`.

    `monotonic()` is the loop's virtual time and works from sync code too; `now()` is `start`
    plus the virtual time elapsed since the clock was made; `sleep()` suspends on the loop, so
    concurrent tasks interleave and time jumps when all of them wait.
    """

    __slots__ = ("_loop", "_origin", "_start")

    def __init__(self, loop: VirtualEventLoop, *, start: datetime = DEFAULT_START) -> None:
        if not isinstance(loop, VirtualEventLoop):
            raise TypeError(f"VirtualClock needs a VirtualEventLoop, got {type(loop).__name__}")
        self._loop = loop
        self._start = _aware_utc(start, "start")
        self._origin = loop.time()

    @property
    def loop(self) -> VirtualEventLoop:
        """The loop whose time this clock reads."""
        return self._loop

    @property
    def start(self) -> datetime:
        """The UTC wall instant `now()` showed when the clock was made."""
        return self._start

    def monotonic(self) -> float:
        return self._loop.time()

    def elapsed(self) -> float:
        """Virtual seconds since the clock was made."""
        return self._loop.time() - self._origin

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._loop.time() - self._origin)

    async def sleep(self, seconds: float) -> None:
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("VirtualClock.sleep() awaited outside the clock's own loop")
        if not seconds > 0:
            if math.isnan(seconds):
                raise ValueError("sleep(nan): seconds must be a number")
            seconds = 0.0
        await asyncio.sleep(seconds)

    def real_io(self) -> _RealIOHold:
        """Hold virtual time still while real I/O runs; see `VirtualEventLoop.real_io`."""
        return self._loop.real_io()

    def __repr__(self) -> str:
        return f"VirtualClock(t={self._loop.time():.6f}, now={self.now().isoformat()})"


class ManualClock:
    """A `Clock` for synchronous unit tests: time moves only when the test moves it.

    `sleep()` advances time at once and returns without yielding to any event loop; every
    requested sleep is recorded in `sleeps`, which is what backoff tests want to look at.
    """

    __slots__ = ("_monotonic", "_wall", "sleeps")

    def __init__(self, start: datetime = DEFAULT_START, *, monotonic: float = 0.0) -> None:
        self._wall = _aware_utc(start, "start")
        self._monotonic = float(_check_seconds(monotonic, "monotonic"))
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both the monotonic and the wall clock forward by `seconds` (>= 0)."""
        if not _check_seconds(seconds, "seconds") >= 0:
            raise ValueError(f"cannot advance by a negative duration: {seconds!r}")
        self._monotonic += seconds
        self._wall += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        """Step the wall clock to `when` (either way, like an NTP step); monotonic stays put."""
        self._wall = _aware_utc(when, "when")

    async def sleep(self, seconds: float) -> None:
        if math.isnan(seconds):
            raise ValueError("sleep(nan): seconds must be a number")
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.advance(seconds)

    def __repr__(self) -> str:
        return f"ManualClock(monotonic={self._monotonic!r}, now={self._wall.isoformat()})"


def run(
    main: Callable[[VirtualClock], Awaitable[_T]],
    *,
    start: datetime = DEFAULT_START,
    max_virtual_seconds: float | None = 30 * 86_400.0,
    max_iterations: int | None = None,
    debug: bool = False,
) -> _T:
    """Run `main(clock)` to completion on a fresh `VirtualEventLoop` and return its result.

    Remaining tasks are cancelled, async generators and the default executor shut down and the
    loop closed, as `asyncio.run` does. `max_virtual_seconds` (default 30 days) and
    `max_iterations` make a runaway scenario fail with `VirtualDeadlineExceeded`.
    """
    _aware_utc(start, "start")
    loop = VirtualEventLoop(max_time=max_virtual_seconds, max_iterations=max_iterations)
    clock = VirtualClock(loop, start=start)

    async def _main() -> _T:
        return await main(clock)

    with asyncio.Runner(debug=debug, loop_factory=lambda: loop) as runner:
        try:
            return runner.run(_main())
        finally:
            loop.arm_shutdown_grace()  # cancelling leftovers must not trip the guards again
