"""The dispatcher against the embedded store on virtual time, with a scripted n8n stand-in."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import random
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TypeVar

import httpx
import pytest

from harness.vclock import VirtualClock, run
from reliability.backoff import Strategy
from reliability.breaker import State
from reliability.config import Settings, TenantConfig
from reliability.dispatch import Dispatcher
from reliability.errors import ErrorCode
from reliability.events import (
    Attempted,
    BreakerChanged,
    DeadLettered,
    Delivered,
    DuplicateSent,
    Event,
    Retrying,
    Snoozed,
)
from reliability.n8n import classify_status
from reliability.store import NewDelivery, SqliteStore

_T = TypeVar("_T")

Reply = int | tuple[int, dict[str, str]] | type[Exception]


@dataclass
class N8n:
    """A scripted n8n: answers from a list (then 200), recording every request it saw."""

    clock: VirtualClock
    script: list[Reply] = field(default_factory=list)
    latency: float = 0.0
    requests: list[httpx.Request] = field(default_factory=list)
    responses: list[weakref.ref[httpx.Response]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    def transport(self) -> httpx.AsyncBaseTransport:
        n8n = self

        class _Transport(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                await request.aread()
                n8n.requests.append(request)
                n8n.times.append(n8n.clock.monotonic())
                n8n.in_flight += 1
                n8n.peak = max(n8n.peak, n8n.in_flight)
                try:
                    if n8n.latency:
                        await n8n.clock.sleep(n8n.latency)
                    reply = n8n.script.pop(0) if n8n.script else 200
                finally:
                    n8n.in_flight -= 1
                if isinstance(reply, type):
                    raise reply("scripted failure")
                status, headers = reply if isinstance(reply, tuple) else (reply, {})
                response = httpx.Response(status, headers=headers, json={"message": "scripted"})
                n8n.responses.append(weakref.ref(response))
                return response

        return _Transport()


SETTINGS = Settings(
    n8n_webhook_url="http://n8n.test/webhook",
    n8n_api_key="k3y",
    n8n_max_retries=3,
    n8n_base_delay_ms=1000,
    n8n_max_delay_ms=30000,
)


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"00000000-0000-0000-0000-{next(numbers):012d}"


@dataclass
class World:
    clock: VirtualClock
    store: SqliteStore
    n8n: N8n
    dispatcher: Dispatcher
    events: list[Event]
    accepted: Iterator[int] = field(default_factory=itertools.count)

    async def enqueue(self, n: int = 1, tenant: str = "t1") -> list[str]:
        """`n` outbox rows for `tenant`, written as the intake writes them (one new event)."""
        deliveries = [
            NewDelivery(tenant, "weekly-recap", {"n": i}, f"{tenant}:evt_{i}:weekly-recap")
            for i in range(n)
        ]
        event_id = f"evt_setup_{next(self.accepted)}"
        result = await self.store.accept_event(tenant, event_id, deliveries, now=self.clock.now())
        return list(result.outbox_ids)

    def of(self, kind: type[_T]) -> list[_T]:
        return [e for e in self.events if isinstance(e, kind)]


def simulate(
    body: Callable[[World], Awaitable[_T]],
    settings: Settings = SETTINGS,
    script: list[Reply] | None = None,
) -> _T:
    async def main(clock: VirtualClock) -> _T:
        store = SqliteStore(":memory:", ids=counter_ids())
        await store.migrate()
        n8n = N8n(clock, list(script or []))
        events: list[Event] = []
        dispatcher = Dispatcher(
            settings,
            store,
            clock,
            transport=n8n.transport(),
            rng=random.Random(1),
            observers=[events.append],
        )
        try:
            return await body(World(clock, store, n8n, dispatcher, events))
        finally:
            await dispatcher.aclose()
            await store.close()

    return run(main)


def test_success_sends_the_payload_with_idempotency_key_and_api_key() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        (request,) = w.n8n.requests
        assert str(request.url) == "http://n8n.test/webhook/weekly-recap"
        assert request.headers["Idempotency-Key"] == "t1:evt_0:weekly-recap"
        assert request.headers["X-N8N-API-KEY"] == "k3y"
        assert request.headers["X-Tenant-Id"] == "t1"
        assert json.loads(request.content) == {"n": 0}
        assert await w.store.delivered_keys() == {"t1:evt_0:weekly-recap"}
        assert [e.attempts for e in w.of(Delivered)] == [1]

    simulate(body)


@pytest.mark.parametrize("api_key", ["", "k3y"])
def test_requests_carry_exactly_these_headers_and_the_timeouts(api_key: str) -> None:
    # Built with httpx's public `Request` and sent on the transport: no client adds anything.
    settings = replace(SETTINGS, n8n_api_key=api_key)

    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        (sent,) = w.n8n.requests
        assert (sent.method, str(sent.url), sent.content) == (
            "POST",
            "http://n8n.test/webhook/weekly-recap",
            b'{"n":0}',
        )
        names = [name for name, _ in sent.headers.raw]
        expected = [b"Host", b"Accept", b"Accept-Encoding", b"User-Agent", b"Content-Type"]
        expected += [b"X-N8N-API-KEY"] if api_key else []
        expected += [b"Idempotency-Key", b"X-Tenant-Id", b"Content-Length"]
        assert names == expected
        assert sent.headers["User-Agent"].startswith("reliability-harness")
        assert sent.headers["Content-Length"] == "7"
        connect = settings.n8n_connect_timeout_ms / 1000
        read = settings.n8n_read_timeout_ms / 1000
        timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
        assert sent.extensions == {"timeout": timeout.as_dict()}

    simulate(body, settings=settings)


def test_a_call_leaves_no_reference_cycle_behind() -> None:
    # Under load, a cycle per call makes the collector the busiest part of the process.
    async def body(w: World) -> None:
        ids = await w.enqueue(2)
        was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        try:
            await w.dispatcher.deliver(ids)
            assert len(w.n8n.responses) == 3  # a 503, its retry, and the second row
            assert [r() for r in w.n8n.responses] == [None, None, None]
        finally:
            if was_enabled:
                gc.enable()

    simulate(body, script=[503])


def test_a_failing_call_gives_its_quota_slot_back() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        assert [r.cause for r in w.of(Retrying)] == [ErrorCode.CONNECTION]
        assert w.dispatcher.quotas.in_flight("t1") == 0
        assert w.dispatcher.quotas.peak("t1") == 1

    simulate(body, script=[httpx.ConnectError])


def test_retryable_failures_back_off_in_process_within_bounds_then_deliver() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        retries = w.of(Retrying)
        assert [r.attempt for r in retries] == [1, 2]
        assert [r.cause for r in retries] == [ErrorCode.HTTP_5XX, ErrorCode.HTTP_5XX]
        for r in retries:
            low, high = r.bounds
            assert low <= r.delay <= high
        gaps = [b - a for a, b in itertools.pairwise(w.n8n.times)]
        assert gaps == pytest.approx([r.delay for r in retries])
        assert 1.0 <= gaps[0] < 1.1  # seed strategy, attempt 0: base + up to 10% of base
        assert 2.0 <= gaps[1] < 2.1
        assert len({r.headers["Idempotency-Key"] for r in w.n8n.requests}) == 1
        assert await w.store.delivered_keys() == {"t1:evt_0:weekly-recap"}

    simulate(body, script=[503, 502])


def test_exhausted_retries_go_to_the_dlq_with_every_attempts_error() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        assert len(w.n8n.requests) == 4  # first call + N8N_MAX_RETRIES
        (dead,) = w.of(DeadLettered)
        assert dead.error_code is ErrorCode.HTTP_5XX
        entry = await w.store.dlq_get(dead.dlq_id, now=w.clock.now())
        assert entry is not None
        assert entry.expires_at - entry.created_at == timedelta(hours=24)
        assert [e.attempt for e in entry.errors] == [1, 2, 3, 4]
        assert await w.store.outbox_rows() == []

    simulate(body, script=[500] * 10)


def test_permanent_4xx_goes_straight_to_the_dlq() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        assert len(w.n8n.requests) == 1
        assert [d.error_code for d in w.of(DeadLettered)] == [ErrorCode.HTTP_4XX]

    simulate(body, script=[404])


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (200, None),
        (204, None),
        (408, ErrorCode.TIMEOUT),
        (429, ErrorCode.HTTP_429),
        (404, ErrorCode.HTTP_4XX),
        (401, ErrorCode.HTTP_4XX),
        (500, ErrorCode.HTTP_5XX),
        (503, ErrorCode.HTTP_5XX),
    ],
)
def test_status_classification(status: int, code: ErrorCode | None) -> None:
    assert classify_status(status) == code


def test_retry_after_is_honoured_up_to_the_max_delay() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        first, second = w.of(Retrying)
        assert first.retry_after == 20.0
        assert first.delay == 20.0  # above the backoff: the server's wish wins
        assert second.retry_after == 3600.0
        assert second.delay == 30.0  # capped at N8N_MAX_DELAY_MS

    simulate(body, script=[(429, {"Retry-After": "20"}), (503, {"Retry-After": "3600"})])


def test_timeouts_and_resets_are_retried_with_the_same_key() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        causes = [r.cause for r in w.of(Retrying)]
        assert causes == [ErrorCode.TIMEOUT, ErrorCode.CONNECTION, ErrorCode.CONNECTION]
        assert len({r.headers["Idempotency-Key"] for r in w.n8n.requests}) == 1
        assert len(w.of(Delivered)) == 1

    simulate(body, script=[httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError, 200])


def test_open_breaker_snoozes_rows_without_spending_attempts() -> None:
    settings = replace(SETTINGS, n8n_circuit_breaker_threshold=2, n8n_max_retries=0)

    async def body(w: World) -> None:
        ids = await w.enqueue(3)
        for oid in ids[:2]:
            await w.dispatcher.deliver([oid])  # two failures: DLQ each, breaker opens
        assert w.dispatcher.breakers.get("t1").state is State.OPEN
        await w.dispatcher.deliver([ids[2]])
        assert len(w.n8n.requests) == 2  # the third call was never made
        (snooze,) = w.of(Snoozed)
        assert snooze.cause is ErrorCode.CIRCUIT_OPEN
        # Until the breaker half-opens, plus up to one base delay of jitter.
        wait = snooze.until - snooze.at
        assert timedelta(seconds=300) <= wait < timedelta(seconds=301)
        (row,) = await w.store.outbox_rows()
        assert row.attempt == 0
        assert row.lease_token is None or row.locked_until is None
        await w.clock.sleep(wait.total_seconds())
        report = await w.dispatcher.drain()
        assert report.delivered == 1
        assert [(t.old, t.new) for t in w.of(BreakerChanged)] == [
            (State.CLOSED, State.OPEN),
            (State.OPEN, State.HALF_OPEN),
            (State.HALF_OPEN, State.CLOSED),
        ]

    simulate(body, settings=settings, script=[500, 500])


def test_rows_refused_while_the_probe_is_out_wait_for_the_probe() -> None:
    settings = replace(SETTINGS, n8n_circuit_breaker_threshold=1, n8n_max_retries=0)

    async def body(w: World) -> None:
        ids = await w.enqueue(3)
        await w.dispatcher.deliver([ids[0]])  # fails: the breaker opens
        await w.clock.sleep(300)  # half-open
        w.n8n.latency = 5.0  # the probe takes a while
        await w.dispatcher.deliver(ids[1:])  # one probe, one refused while it is out
        (snooze,) = w.of(Snoozed)
        wait = (snooze.until - snooze.at).total_seconds()
        read_timeout = SETTINGS.n8n_read_timeout_ms / 1000
        assert read_timeout <= wait < 2 * read_timeout  # long enough for the probe to finish
        assert len(w.n8n.requests) == 2

    simulate(body, settings=settings, script=[500, 200])


def test_cookies_never_travel_between_tenants() -> None:
    async def body(w: World) -> None:
        (a,) = await w.enqueue(1, tenant="a")
        (b,) = await w.enqueue(1, tenant="b")
        await w.dispatcher.deliver([a])
        await w.dispatcher.deliver([b])
        assert [r.headers.get("X-Tenant-Id") for r in w.n8n.requests] == ["a", "b"]
        assert "cookie" not in w.n8n.requests[1].headers

    simulate(body, script=[(200, {"Set-Cookie": "session=tenant-a-secret; Path=/"}), 200])


def test_drain_gives_each_due_row_one_attempt_and_releases_it() -> None:
    async def body(w: World) -> None:
        await w.enqueue(3)
        first = await w.dispatcher.drain()
        assert (first.claimed, first.delivered, first.retried) == (3, 2, 1)
        again = await w.dispatcher.drain()
        assert again.claimed == 0  # the retried row is not due yet
        await w.clock.sleep(1.2)
        last = await w.dispatcher.drain()
        assert (last.claimed, last.delivered) == (1, 1)
        assert len(await w.store.delivered_keys()) == 3

    simulate(body, script=[200, 500, 200])


def test_a_crash_mid_backoff_leaves_the_row_to_a_drain_after_the_lease() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        backing_off = asyncio.Event()
        w.dispatcher.add_observer(lambda e: backing_off.set() if isinstance(e, Retrying) else None)
        task = asyncio.create_task(w.dispatcher.deliver([oid]))
        await backing_off.wait()
        task.cancel()  # kill -9: no cleanup, the lease stays in the store
        with pytest.raises(asyncio.CancelledError):
            await task
        (row,) = await w.store.outbox_rows()
        assert row.attempt == 1
        await w.clock.sleep(5)
        assert (await w.dispatcher.drain()).claimed == 0  # still leased
        await w.clock.sleep(w.dispatcher.lease.total_seconds())
        assert (await w.dispatcher.drain()).delivered == 1
        assert len({r.headers["Idempotency-Key"] for r in w.n8n.requests}) == 1

    simulate(body, script=[500])


def test_quota_caps_in_flight_calls_per_tenant() -> None:
    tenants = {"t1": TenantConfig("t1", concurrency_limit=3)}
    settings = replace(SETTINGS, tenants=tenants)

    async def body(w: World) -> None:
        w.n8n.latency = 0.5
        ids = await w.enqueue(20)
        await w.dispatcher.deliver(ids)
        assert w.n8n.peak == 3
        assert w.dispatcher.quotas.peak("t1") == 3
        assert len(await w.store.delivered_keys()) == 20

    simulate(body, settings=settings)


def test_retry_budget_stops_retries_while_failures_dominate() -> None:
    settings = replace(
        SETTINGS,
        n8n_retry_budget_enabled=True,
        n8n_retry_budget_max_tokens=4,
        n8n_max_retries=10,
    )

    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        # 4 tokens: the 2nd failure leaves 2 (not above half): no more retries.
        assert len(w.n8n.requests) == 2
        assert [d.error_code for d in w.of(DeadLettered)] == [ErrorCode.RETRY_BUDGET]

    simulate(body, settings=settings, script=[500] * 10)


def test_manual_retry_redelivers_a_dead_letter() -> None:
    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        (dead,) = w.of(DeadLettered)
        new_id = await w.dispatcher.retry_dead_letter(dead.dlq_id)
        assert new_id is not None
        assert await w.dispatcher.retry_dead_letter(dead.dlq_id) is None  # already taken
        assert await w.store.delivered_keys() == {"t1:evt_0:weekly-recap"}
        assert len(w.n8n.requests) == 2

    simulate(body, script=[400])


def test_drain_purges_expired_dead_letters_once_per_interval() -> None:
    settings = replace(SETTINGS, n8n_dlq_ttl_hours=1.0, n8n_max_retries=0)

    async def body(w: World) -> None:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        assert (await w.dispatcher.drain()).purged == 0  # first purge: nothing expired yet
        await w.clock.sleep(3600)
        assert (await w.dispatcher.drain()).purged == 1  # interval (1 h) passed, entry expired

    simulate(body, settings=settings, script=[500])


def test_drain_purges_delivered_rows_after_the_retention_on_sqlite() -> None:
    settings = replace(SETTINGS, reliability_outbox_retention_hours=2.0)

    async def body(w: World) -> None:
        await w.dispatcher.deliver(await w.enqueue(4))
        assert (await w.dispatcher.drain()).purged_outbox == 0
        await w.clock.sleep(3600)  # one cleanup interval: the rows are an hour old
        assert (await w.dispatcher.drain()).purged_outbox == 0
        assert len(await w.store.outbox_rows(include_done=True)) == 4
        await w.clock.sleep(3601)  # two hours and a second: past the retention
        assert (await w.dispatcher.drain()).purged_outbox == 4
        assert await w.store.outbox_rows(include_done=True) == []

    simulate(body, settings=settings)


def test_a_late_2xx_on_a_lost_lease_is_counted_as_a_duplicate() -> None:
    async def body(w: World) -> None:
        w.n8n.latency = 1.0
        (oid,) = await w.enqueue()

        async def steal() -> None:  # another instance claims the row while the call is out
            await w.clock.sleep(0.5)
            later = w.clock.now() + w.dispatcher.lease
            assert await w.store.claim(oid, now=later, lease=w.dispatcher.lease) is not None

        await asyncio.gather(w.dispatcher.deliver([oid]), steal())
        assert w.of(Delivered) == []
        [dup] = w.of(DuplicateSent)
        assert (dup.outbox_id, dup.cause) == (oid, "lost_lease")

    simulate(body)


def test_the_whole_call_has_a_deadline_below_the_lease() -> None:
    settings = replace(SETTINGS, n8n_connect_timeout_ms=1000, n8n_read_timeout_ms=5000)

    async def body(w: World) -> None:
        w.n8n.latency = 60.0  # the stand-in never reads the timeouts: only the deadline ends it
        await w.enqueue()
        started = w.clock.monotonic()
        report = await w.dispatcher.drain()
        assert report.retried == 1
        assert w.clock.monotonic() - started == pytest.approx(6.0)
        [attempt] = w.of(Attempted)
        assert attempt.outcome is ErrorCode.TIMEOUT
        assert timedelta(seconds=6.0 + 5.0) <= w.dispatcher.lease

    simulate(body, settings=settings)


def test_attempted_events_carry_status_outcome_and_duration() -> None:
    async def body(w: World) -> None:
        w.n8n.latency = 0.25
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        attempts = w.of(Attempted)
        assert [(a.attempt, a.status, a.outcome) for a in attempts] == [
            (1, 503, ErrorCode.HTTP_5XX),
            (2, 200, None),
        ]
        assert all(a.duration == pytest.approx(0.25) for a in attempts)

    simulate(body, script=[503])


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_schedules_within_its_bounds(strategy: Strategy) -> None:
    settings = replace(SETTINGS, n8n_backoff_strategy=strategy, n8n_max_retries=6)

    async def body(w: World) -> Iterator[Retrying]:
        (oid,) = await w.enqueue()
        await w.dispatcher.deliver([oid])
        return iter(w.of(Retrying))

    retries = list(simulate(body, settings=settings, script=[500] * 6))
    assert len(retries) == 6
    for r in retries:
        assert r.bounds[0] <= r.delay <= r.bounds[1] <= 30.0
