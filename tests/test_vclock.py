"""Virtual time: jumps instead of waits, real interleaving, real I/O holds, guards, fixture."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import socket
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from harness.vclock import (
    DEFAULT_START,
    ManualClock,
    VirtualClock,
    VirtualDeadlineExceeded,
    VirtualDeadlock,
    VirtualEventLoop,
    run,
)
from reliability.clock import Clock

pytest_plugins = ("harness.testing.vclock",)

Trace = list[tuple[float, str, str]]


# --- determinism and concurrency -------------------------------------------------------------


def _mixed_program(seed: int) -> Trace:
    """Workers, a queue, an event and a semaphore, all driven by one seeded RNG."""

    async def main(clock: VirtualClock) -> Trace:
        rng = random.Random(seed)
        trace: Trace = []
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=3)
        go = asyncio.Event()
        slots = asyncio.Semaphore(2)

        def note(who: str, what: str) -> None:
            trace.append((clock.monotonic(), who, what))

        async def producer() -> None:
            await go.wait()
            for i in range(20):
                await clock.sleep(rng.uniform(0, 2))
                await queue.put(i)
                note("producer", f"put {i}")
            for _ in range(3):
                await queue.put(-1)

        async def consumer(name: str) -> None:
            while (item := await queue.get()) >= 0:
                async with slots:
                    await clock.sleep(rng.expovariate(1.0))
                    note(name, f"done {item}")

        async def starter() -> None:
            await clock.sleep(5)
            note("starter", "go")
            go.set()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(producer())
            for n in range(3):
                tg.create_task(consumer(f"c{n}"))
            tg.create_task(starter())
        note("main", f"end {clock.now().isoformat()}")
        return trace

    return run(main)


def test_same_program_same_trace() -> None:
    first = _mixed_program(seed=7)
    assert first == _mixed_program(seed=7)
    assert first != _mixed_program(seed=8)
    assert [what for _, who, what in first if who == "starter"] == ["go"]
    assert first[0] == (5.0, "starter", "go")
    done = sorted(int(what.split()[1]) for _, who, what in first if who.startswith("c"))
    assert done == list(range(20))


def test_tasks_interleave_in_timestamp_order() -> None:
    n_tasks, n_steps = 50, 40

    def delays(rng: random.Random) -> list[float]:
        return [rng.uniform(0.001, 60) for _ in range(n_steps)]

    plans = {f"t{i}": delays(random.Random(1000 + i)) for i in range(n_tasks)}

    async def main(clock: VirtualClock) -> Trace:
        trace: Trace = []

        async def worker(name: str) -> None:
            for step, delay in enumerate(delays(random.Random(1000 + int(name[1:])))):
                await clock.sleep(delay)
                trace.append((clock.monotonic(), name, str(step)))

        await asyncio.gather(*(worker(name) for name in plans))
        return trace

    trace = run(main)
    expected = []
    for name, plan in plans.items():
        t = 0.0
        for step, delay in enumerate(plan):
            t += delay
            expected.append((t, name, str(step)))
    assert sorted(trace) == sorted(expected)  # every wake-up at exactly its own instant
    times = [t for t, _, _ in trace]
    assert times == sorted(times)  # ... and globally in time order, across tasks
    switches = sum(1 for a, b in itertools.pairwise(trace) if a[1] != b[1])
    assert switches > len(trace) // 2  # genuinely interleaved, not task after task


def test_a_day_of_sleeps_jumps_straight_through() -> None:
    async def main(clock: VirtualClock) -> tuple[float, datetime, int]:
        async def minute_ticker() -> None:
            for _ in range(24 * 60):
                await clock.sleep(60)

        await asyncio.gather(*(minute_ticker() for _ in range(10)))
        await clock.sleep(86_400)
        return clock.elapsed(), clock.now(), clock.loop.jumps

    wall = time.perf_counter()
    elapsed, now, jumps = run(main)
    wall = time.perf_counter() - wall
    assert elapsed == 2 * 86_400
    assert now == DEFAULT_START + timedelta(days=2)
    assert jumps == 24 * 60 + 1  # the ten tickers share each minute's jump
    assert wall < 5.0  # a loop that really slept would take two days


def test_sync_code_reads_virtual_time_inside_the_loop() -> None:
    async def main(clock: VirtualClock) -> list[float]:
        seen: list[float] = []
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def at_seven() -> None:
            seen.append(clock.monotonic())
            done.set()

        loop.call_later(2.5, lambda: seen.append(clock.monotonic()))
        loop.call_at(7.0, at_seven)
        await done.wait()
        return seen

    assert run(main) == [2.5, 7.0]


def test_clock_is_a_clock_and_validates() -> None:
    loop = VirtualEventLoop()
    try:
        clock = VirtualClock(loop, start=datetime(2030, 6, 1, 12, tzinfo=UTC))
        assert isinstance(clock, Clock)
        assert clock.now() == datetime(2030, 6, 1, 12, tzinfo=UTC)
        assert clock.monotonic() == 0.0
        with pytest.raises(ValueError, match="timezone-aware"):
            VirtualClock(loop, start=datetime(2030, 1, 1))
        with pytest.raises(ValueError, match="max_time"):
            loop.set_limits(max_time=-1)
    finally:
        loop.close()
    plain = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="VirtualEventLoop"):
            VirtualClock(plain)  # type: ignore[arg-type]
    finally:
        plain.close()


def test_sleep_edge_values() -> None:
    async def main(clock: VirtualClock) -> float:
        await clock.sleep(-5)
        await clock.sleep(0)
        assert clock.monotonic() == 0.0
        with pytest.raises(ValueError, match="nan"):
            await clock.sleep(math.nan)
        await clock.sleep(1e-3)
        return clock.monotonic()

    assert run(main) == 1e-3


# --- timeouts, queues, events, httpx ---------------------------------------------------------


def test_wait_for_and_timeout() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(clock.sleep(10), timeout=3)
        out.append(("wait_for timed out", clock.monotonic()))
        assert await asyncio.wait_for(asyncio.sleep(2, result="ok"), timeout=3) == "ok"
        out.append(("wait_for in time", clock.monotonic()))
        async with asyncio.timeout(5):
            await clock.sleep(4.5)
        out.append(("timeout not hit", clock.monotonic()))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await asyncio.Event().wait()
        out.append(("timeout hit", clock.monotonic()))
        await clock.sleep(1)  # the cancelled 10 s timer must not drag time along
        out.append(("after", clock.monotonic()))
        return out

    assert run(main) == [
        ("wait_for timed out", 3.0),
        ("wait_for in time", 5.0),
        ("timeout not hit", 9.5),
        ("timeout hit", 10.5),
        ("after", 11.5),
    ]


def test_queue_event_semaphore_interplay() -> None:
    async def main(clock: VirtualClock) -> dict[str, list[float]]:
        log: dict[str, list[float]] = {"got": [], "released": [], "held": []}
        queue: asyncio.Queue[float] = asyncio.Queue()
        gate = asyncio.Event()
        slots = asyncio.Semaphore(2)

        async def produce() -> None:
            for delay in (1, 2, 3):
                await clock.sleep(delay)
                queue.put_nowait(clock.monotonic())

        async def consume() -> None:
            for _ in range(3):
                sent = await queue.get()
                assert sent == clock.monotonic()  # delivered in the same instant
                log["got"].append(sent)

        async def wait_gate() -> None:
            await gate.wait()
            log["released"].append(clock.monotonic())

        async def hold_slot() -> None:
            async with slots:
                await clock.sleep(1)
                log["held"].append(clock.monotonic())

        async def open_gate() -> None:
            await clock.sleep(4)
            gate.set()

        await asyncio.gather(
            produce(),
            consume(),
            *(wait_gate() for _ in range(3)),
            open_gate(),
            *(hold_slot() for _ in range(5)),
        )
        return log

    assert run(main) == {
        "got": [1.0, 3.0, 6.0],
        "released": [4.0, 4.0, 4.0],
        "held": [1.0, 1.0, 2.0, 2.0, 3.0],
    }


class _SlowTransport(httpx.AsyncBaseTransport):
    """An in-process server with latency on the virtual clock; it times out as a socket would."""

    def __init__(self, clock: VirtualClock, latency: dict[str, float]) -> None:
        self._clock = clock
        self._latency = latency

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        latency = self._latency[request.url.path]
        read_timeout = request.extensions.get("timeout", {}).get("read")
        if read_timeout is not None and latency > read_timeout:
            await self._clock.sleep(read_timeout)
            raise httpx.ReadTimeout("no response in time", request=request)
        await self._clock.sleep(latency)
        return httpx.Response(200, json={"at": self._clock.monotonic()})


def test_httpx_client_with_in_process_transport() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        transport = _SlowTransport(clock, {"/fast": 0.25, "/slow": 30.0})
        out: list[tuple[str, float]] = []
        async with httpx.AsyncClient(
            transport=transport, base_url="http://n8n.test", timeout=5.0
        ) as client:
            a, b = await asyncio.gather(client.get("/fast"), client.get("/fast"))
            assert a.json() == b.json() == {"at": 0.25}
            out.append(("two concurrent fast", clock.monotonic()))
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow")
            out.append(("slow timed out", clock.monotonic()))
            response = await client.get("/slow", timeout=60.0)
            assert response.json() == {"at": clock.monotonic()}
            out.append(("slow with long timeout", clock.monotonic()))
        return out

    assert run(main) == [
        ("two concurrent fast", 0.25),
        ("slow timed out", 5.25),
        ("slow with long timeout", 35.25),
    ]


# --- real I/O ---------------------------------------------------------------------------------


def _echo_peer(sock: socket.socket, rounds: int) -> threading.Thread:
    """A real peer in a thread: answers each byte it receives with that byte plus one."""

    def serve() -> None:
        with sock:
            for _ in range(rounds):
                data = sock.recv(1)
                if not data:
                    return
                sock.sendall(bytes([data[0] + 1]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_real_io_hold_keeps_time_still_while_a_timer_is_pending() -> None:
    rounds = 50

    async def main(clock: VirtualClock) -> tuple[list[int], float, float]:
        ours, theirs = socket.socketpair()
        peer = _echo_peer(theirs, rounds)
        reader, writer = await asyncio.open_connection(sock=ours)
        timer = asyncio.create_task(clock.sleep(10))
        answers: list[int] = []
        async with clock.real_io():
            assert clock.loop.io_holds == 1
            for i in range(rounds):
                writer.write(bytes([i]))
                await writer.drain()
                answers.append((await reader.readexactly(1))[0])
                assert not timer.done()
        during = clock.monotonic()
        assert clock.loop.io_holds == 0
        await timer  # released: time jumps to the pending timer again
        writer.close()
        await writer.wait_closed()
        await asyncio.to_thread(peer.join)
        return answers, during, clock.monotonic()

    answers, during, after = run(main)
    assert answers == [i + 1 for i in range(50)]
    assert during == 0.0
    assert after == 10.0


def test_without_a_hold_time_runs_ahead_of_real_io() -> None:
    """The counterpart: unheld, the loop jumps to the timer, whose task then writes."""

    async def main(clock: VirtualClock) -> tuple[int, float]:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        peer_reader, peer_writer = await asyncio.open_connection(sock=theirs)

        async def late_writer() -> None:
            await clock.sleep(30)
            peer_writer.write(b"\x07")

        task = asyncio.create_task(late_writer())
        byte = (await reader.readexactly(1))[0]
        await task
        for w in (writer, peer_writer):
            w.close()
            await w.wait_closed()
        del peer_reader
        return byte, clock.monotonic()

    assert run(main) == (7, 30.0)


def test_executor_work_holds_time() -> None:
    async def main(clock: VirtualClock) -> tuple[int, float, bool]:
        timer = asyncio.create_task(clock.sleep(10))
        await asyncio.sleep(0)
        total = await asyncio.to_thread(sum, range(100_000))
        return total, clock.monotonic(), timer.done()

    assert run(main) == (sum(range(100_000)), 0.0, False)


def test_unheld_wait_on_nothing_is_a_deadlock() -> None:
    async def main(clock: VirtualClock) -> None:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        try:
            await reader.read(1)  # nobody writes, nothing is held: it can never finish
        finally:
            writer.close()
            theirs.close()

    with pytest.raises(VirtualDeadlock, match=r"real_io\(\)"):
        run(main)


@pytest.mark.postgres
def test_real_postgres_under_virtual_time(pg_url: str) -> None:
    async def main(clock: VirtualClock) -> tuple[list[tuple[int, str]], float, float]:
        timer = asyncio.create_task(clock.sleep(60))
        async with clock.real_io():
            conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
            async with conn:

                async def query(n: int) -> tuple[int, str]:
                    async with conn.cursor() as cur:
                        await cur.execute("select %s::int, pg_typeof(%s::int)::text", (n, n))
                        row = await cur.fetchone()
                        assert row is not None
                        return row[0], row[1]

                rows = await asyncio.gather(*(query(n) for n in range(5)))
        during = clock.monotonic()
        assert not timer.done()
        await timer
        return rows, during, clock.monotonic()

    rows, during, after = run(main)
    assert rows == [(n, "integer") for n in range(5)]
    assert (during, after) == (0.0, 60.0)


# --- blocking and watching time --------------------------------------------------------------


def test_block_moves_time_at_once_and_watchers_see_every_move() -> None:
    async def main(clock: VirtualClock) -> tuple[list[float], list[str]]:
        loop = clock.loop
        seen: list[float] = []
        order: list[str] = []
        stop = loop.watch_time(seen.append)

        async def late() -> None:
            await asyncio.sleep(5)
            order.append(f"timer at {loop.time():g}")

        task = asyncio.create_task(late())
        await asyncio.sleep(0)
        loop.block(0)  # no move, no call
        loop.block(12.5)  # the timer due at 5 runs late, after the block
        order.append(f"blocked until {loop.time():g}")
        await task
        await asyncio.sleep(1)  # a jump
        stop()
        await asyncio.sleep(1)  # not seen any more
        with pytest.raises(ValueError, match="negative"):
            loop.block(-1)
        with pytest.raises(ValueError, match="finite"):
            loop.block(math.inf)
        return seen, order

    seen, order = run(main)
    assert seen == [12.5, 13.5]
    assert order == ["blocked until 12.5", "timer at 12.5"]


def test_block_past_max_time_is_a_runaway() -> None:
    async def main(clock: VirtualClock) -> None:
        clock.loop.block(3601)

    with pytest.raises(VirtualDeadlineExceeded, match=r"blocking 3601\.0+s passes max_time"):
        run(main, max_virtual_seconds=3600)


# --- guards -----------------------------------------------------------------------------------


def test_virtual_deadline_stops_a_runaway() -> None:
    clocks: list[VirtualClock] = []

    async def main(clock: VirtualClock) -> None:
        clocks.append(clock)
        while True:
            await clock.sleep(60)

    with pytest.raises(VirtualDeadlineExceeded, match=r"past max_time=3600\.0+s") as info:
        run(main, max_virtual_seconds=3600)
    assert "t=3600.000000s" in str(info.value)
    assert clocks[0].monotonic() == 3600.0
    assert clocks[0].loop.is_closed()


def test_iteration_limit_stops_a_busy_loop() -> None:
    async def main(clock: VirtualClock) -> None:
        while True:  # noqa: ASYNC110 (a busy loop is the runaway under test)
            await asyncio.sleep(0)

    with pytest.raises(VirtualDeadlineExceeded, match="max_iterations=1000"):
        run(main, max_iterations=1000)


def test_cleanup_after_a_guard_lets_tasks_finish_their_finally() -> None:
    cleaned: list[float] = []

    async def main(clock: VirtualClock) -> None:
        async def worker() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append(clock.monotonic())

        asyncio.create_task(worker())  # noqa: RUF006 (the runner cancels it)
        while True:
            await clock.sleep(1)

    with pytest.raises(VirtualDeadlineExceeded):
        run(main, max_virtual_seconds=10)
    assert cleaned == [10.0]


def test_run_returns_result_and_rejects_naive_start() -> None:
    async def main(clock: VirtualClock) -> str:
        await clock.sleep(90)
        return clock.now().isoformat()

    assert run(main, start=datetime(2026, 3, 1, tzinfo=UTC)) == "2026-03-01T00:01:30+00:00"
    with pytest.raises(ValueError, match="start must be a timezone-aware"):
        run(main, start=datetime(2026, 3, 1))


# --- ManualClock ------------------------------------------------------------------------------


def test_manual_clock() -> None:
    clock = ManualClock(datetime(2026, 5, 1, tzinfo=UTC), monotonic=100.0)
    assert isinstance(clock, Clock)
    clock.advance(2.5)
    assert clock.monotonic() == 102.5
    assert clock.now() == datetime(2026, 5, 1, 0, 0, 2, 500_000, tzinfo=UTC)
    clock.set(datetime(2025, 1, 1, tzinfo=UTC))  # a wall-clock step backwards
    assert clock.now() == datetime(2025, 1, 1, tzinfo=UTC)
    assert clock.monotonic() == 102.5
    coro = clock.sleep(4)
    with pytest.raises(StopIteration):  # finishes without ever suspending
        coro.send(None)
    asyncio.run(clock.sleep(-1))
    assert clock.sleeps == [4.0, 0.0]
    assert clock.monotonic() == 106.5
    with pytest.raises(ValueError, match="negative"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="finite"):
        clock.advance(math.inf)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 1, 1))


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=50))
def test_manual_clock_advances_add_up(steps: list[float]) -> None:
    clock = ManualClock()
    for step in steps:
        clock.advance(step)
    assert clock.monotonic() == pytest.approx(math.fsum(steps), rel=1e-9, abs=1e-9)
    drift = abs((clock.now() - DEFAULT_START).total_seconds() - math.fsum(steps))
    assert drift <= 1e-6 * (len(steps) + 1)  # timedelta keeps microseconds


# --- the pytest fixture -----------------------------------------------------------------------


async def test_fixture_sleeps_a_day_at_once(virtual_clock: VirtualClock) -> None:
    assert isinstance(asyncio.get_running_loop(), VirtualEventLoop)
    before = virtual_clock.monotonic()
    wall = time.perf_counter()
    await virtual_clock.sleep(86_400)
    assert time.perf_counter() - wall < 5.0
    assert virtual_clock.monotonic() - before == 86_400
    assert virtual_clock.now() == DEFAULT_START + timedelta(days=1)


async def test_other_async_tests_keep_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    assert not isinstance(loop, VirtualEventLoop)
    assert isinstance(loop, asyncio.BaseEventLoop)


@pytest_asyncio.fixture
async def ticker(virtual_clock: VirtualClock) -> AsyncIterator[list[float]]:
    """An async fixture that runs a background task on the same virtual loop as its test."""
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            await virtual_clock.sleep(10)
            ticks.append(virtual_clock.monotonic())

    task = asyncio.create_task(tick())
    yield ticks
    task.cancel()


async def test_async_fixtures_share_the_virtual_loop(
    virtual_clock: VirtualClock, ticker: list[float]
) -> None:
    await virtual_clock.sleep(35)
    assert ticker == [10.0, 20.0, 30.0]


class TestStartOverride:
    @pytest.fixture
    def virtual_clock_start(self) -> datetime:
        return datetime(2031, 12, 31, 23, 59, tzinfo=UTC)

    async def test_start_instant_is_configurable(self, virtual_clock: VirtualClock) -> None:
        await virtual_clock.sleep(120)
        assert virtual_clock.now() == datetime(2032, 1, 1, 0, 1, tzinfo=UTC)
