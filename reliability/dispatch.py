"""Deliver outbox rows to n8n: quota, then breaker, then the call, then retry, snooze or DLQ.

Two ways in, no timers. `deliver(ids)` runs right after an intake commits and sees its rows
through, sleeping out each backoff in-process while it holds the row's lease (the next attempt
time is written first, so a crash loses nothing: a drain takes the row once the lease passes).
`drain()` is what the external cron calls: it claims due rows and gives each one attempt.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import httpx

from reliability.backoff import apply_retry_after, parse_retry_after
from reliability.breaker import BreakerRegistry, CircuitOpen, Transition
from reliability.budget import RetryBudget
from reliability.clock import Clock
from reliability.config import Settings, TenantPolicy
from reliability.errors import ErrorCode
from reliability.events import (
    Attempted,
    BreakerChanged,
    DeadLettered,
    Delivered,
    Event,
    Observer,
    QuotaWaited,
    Retrying,
    Snoozed,
)
from reliability.quota import QuotaExceeded, TenantQuotas
from reliability.routing import workflow_url
from reliability.store.base import (
    DEFAULT_PROCESSED_RETENTION,
    MAX_ERROR_MESSAGE,
    AttemptError,
    OutboxRow,
    Store,
)

__all__ = ["Dispatcher", "DrainReport", "classify_status"]


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What one drain call did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    snoozed: int = 0
    dead_lettered: int = 0
    lost_lease: int = 0
    purged: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None
    code: ErrorCode | None
    retry_after: float | None
    message: str


def classify_status(status: int) -> ErrorCode | None:
    """2xx succeeds; 408 is a timeout, 429 and 5xx are retryable; other 4xx are permanent."""
    if 200 <= status < 300:
        return None
    if status == 408:
        return ErrorCode.TIMEOUT
    if status == 429:
        return ErrorCode.HTTP_429
    if 400 <= status < 500:
        return ErrorCode.HTTP_4XX
    return ErrorCode.HTTP_5XX


_PERMANENT = frozenset({ErrorCode.HTTP_4XX, ErrorCode.INVALID_PAYLOAD})
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_SPENT = httpx.ByteStream(b"")
_Raw = tuple[tuple[bytes, bytes], ...]


class Dispatcher:
    """Delivers outbox rows for every tenant of one process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        observers: Sequence[Observer] = (),
        instance: str = "dispatcher",
    ) -> None:
        self.settings = settings
        self.instance = instance
        self._store = store
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._observers = list(observers)
        connect = settings.n8n_connect_timeout_ms / 1000
        read = settings.n8n_read_timeout_ms / 1000
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
        )
        # One client serves every tenant: a shared cookie jar would carry one tenant's cookies
        # into another's calls (and parsing Set-Cookie costs on every call). Keep none.
        self._client._cookies = _NoCookies()
        # Requests are built in `_call` as `client.post` would build them (the client's
        # headers, then ours; its timeout), from headers encoded once, not merged per call.
        api_key = (settings.n8n_api_key_header, settings.n8n_api_key)
        self._defaults, self._api_key = _encoded_headers(
            self._client.headers, api_key if api_key[1] else None
        )
        self._ext = {"timeout": self._client.timeout.as_dict()}  # copied by each request
        self._policies: dict[str, TenantPolicy] = {}
        self._targets: dict[str, tuple[httpx.URL, _Raw]] = {}  # the URL, headers up to ours
        # A lease outlives the longest possible call by a margin, so a slow call keeps its row;
        # a crashed holder's rows come back to a drain once it has passed.
        margin = settings.reliability_lease_margin_ms / 1000
        self._lease = timedelta(seconds=connect + 2 * read + margin)
        self._read_timeout = read
        self.breakers = BreakerRegistry(
            clock, lambda t: settings.tenant(t).breaker, listeners=[self._on_transition]
        )
        self.quotas = TenantQuotas(
            clock,
            lambda t: settings.tenant(t).concurrency_limit,
            global_max=settings.n8n_max_concurrency,
            on_wait=self._on_quota_wait,
        )
        budget = settings.budget_policy
        self.budget = RetryBudget(budget) if budget is not None else None
        self._last_purge: float | None = None

    @property
    def lease(self) -> timedelta:
        return self._lease

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- entry points ---------------------------------------------------------------------------

    async def deliver(self, outbox_ids: Sequence[str]) -> None:
        """Claim these rows and see each through: delivered, dead-lettered or handed to drain."""
        await _together([self._deliver_one(i) for i in outbox_ids])

    async def deliver_claimed(self, rows: Sequence[OutboxRow]) -> None:
        """See rows through that the caller already holds (e.g. claimed at intake)."""
        await _together([self._run(r, hold=True) for r in rows])

    async def drain(self, *, batch: int = 100, budget_seconds: float = 10.0) -> DrainReport:
        """Give every due row one attempt, `batch` rows at a time, until none is due or the
        time budget is spent; purge expired dead letters when the last purge is old enough."""
        started = self._clock.monotonic()
        totals: dict[str, int] = dict.fromkeys((f.name for f in fields(DrainReport)), 0)
        totals["purged"] = await self._maybe_purge()
        while self._clock.monotonic() - started < budget_seconds:
            rows = await self._store.claim_due(batch, now=self._clock.now(), lease=self._lease)
            if not rows:
                break
            totals["claimed"] += len(rows)
            for result in await asyncio.gather(*(self._run(r, hold=False) for r in rows)):
                totals[result] += 1
            if len(rows) < batch:
                break
        return DrainReport(**totals)

    async def retry_dead_letter(self, dlq_id: str) -> str | None:
        """Take a DLQ entry back into the outbox and deliver it now; its new outbox id."""
        new_id = await self._store.dlq_retry(dlq_id, now=self._clock.now())
        if new_id is not None:
            await self.deliver([new_id])
        return new_id

    # -- one row --------------------------------------------------------------------------------

    async def _deliver_one(self, outbox_id: str) -> None:
        row = await self._store.claim(outbox_id, now=self._clock.now(), lease=self._lease)
        if row is not None:
            await self._run(row, hold=True)

    async def _run(self, row: OutboxRow, *, hold: bool) -> str:
        """Attempt `row` until it is settled; with `hold`, sleep out backoffs in-process.

        Returns the DrainReport field that counts how it ended.
        """
        policy = self._policy(row.tenant_id)
        backoff = policy.retry.backoff()
        token = row.lease_token or ""
        attempt = row.attempt
        previous: float | None = None
        while True:
            try:
                outcome = await self._attempt(row, attempt)
            except CircuitOpen as exc:
                wait = self._snooze_for(exc, backoff.base)
                return await self._snooze(row, token, wait, ErrorCode.CIRCUIT_OPEN)
            except QuotaExceeded:
                return await self._snooze(row, token, backoff.base, ErrorCode.QUOTA)
            now = self._clock.now()
            if outcome.code is None:
                if self.budget is not None:
                    self.budget.on_success(row.tenant_id)
                if not await self._store.complete(row.id, token, now=now):
                    return "lost_lease"
                self._emit(
                    Delivered(
                        now, row.tenant_id, row.workflow, row.id, row.idempotency_key, attempt + 1
                    )
                )
                return "delivered"

            if self.budget is not None:
                self.budget.on_failure(row.tenant_id)
            attempt += 1
            error = AttemptError(attempt, now, outcome.code, outcome.message)
            if outcome.code in _PERMANENT or attempt > policy.retry.max_retries:
                return await self._dead_letter(row, token, outcome.code, error, attempt)
            if self.budget is not None and not self.budget.allows_retry(row.tenant_id):
                return await self._dead_letter(row, token, ErrorCode.RETRY_BUDGET, error, attempt)

            delay = backoff.delay(attempt - 1, self._rng, previous)
            bounds = backoff.bounds(attempt - 1, previous)
            previous = delay
            delay = apply_retry_after(delay, outcome.retry_after, backoff.cap)
            next_at = now + timedelta(seconds=delay)
            hold_until = next_at + self._lease if hold else None
            if not await self._store.reschedule(
                row.id, token, next_attempt_at=next_at, error=error, hold_until=hold_until
            ):
                return "lost_lease"
            self._emit(
                Retrying(
                    now,
                    row.tenant_id,
                    row.id,
                    attempt,
                    delay,
                    bounds,
                    outcome.retry_after,
                    outcome.code,
                )
            )
            if not hold:
                return "retried"
            await self._clock.sleep(delay)

    async def _attempt(self, row: OutboxRow, attempt: int) -> _Outcome:
        """One call under the tenant's quota and breaker. Raises CircuitOpen/QuotaExceeded."""
        # No slot within a call's read timeout: the row is snoozed (QuotaExceeded).
        await self.quotas.acquire(row.tenant_id, timeout=self._read_timeout)
        try:
            breaker = self.breakers.get(row.tenant_id)
            ticket = breaker.acquire()
            started = self._clock.monotonic()
            try:
                outcome = await self._call(row)
            except BaseException:
                breaker.release(ticket)
                raise
            breaker.record(ticket, outcome.code)
        finally:
            self.quotas.release(row.tenant_id)
        self._emit(
            Attempted(
                self._clock.now(),
                row.tenant_id,
                row.workflow,
                row.id,
                row.idempotency_key,
                attempt + 1,
                outcome.status,
                outcome.code,
                self._clock.monotonic() - started,
            )
        )
        return outcome

    async def _call(self, row: OutboxRow) -> _Outcome:
        target = self._targets.get(row.workflow)
        if target is None:  # parsed once per workflow, not on every call
            url = httpx.URL(workflow_url(self.settings, row.workflow))
            host: _Raw = ((b"Host", url.netloc),) if url.host else ()
            target = self._targets[row.workflow] = (url, host + self._defaults)
        url, leading = target
        body = _COMPACT.encode(row.payload).encode()
        # Every header `client.post(url, content=body)` would set, in its order, given here so
        # httpx has none to work out: the same request for a fraction of the cost.
        headers = [
            *leading,
            (b"Idempotency-Key", row.idempotency_key.encode("ascii")),
            (b"X-Tenant-Id", row.tenant_id.encode("ascii")),
            *self._api_key,
            (b"Content-Length", str(len(body)).encode("ascii")),
        ]
        stream = httpx.ByteStream(body)
        request = httpx.Request("POST", url, headers=headers, stream=stream, extensions=self._ext)
        request.read()  # as `content=` does: transports may read `request.content` at once
        try:
            response = await self._client.send(request)
        except httpx.ConnectTimeout as exc:
            return _Outcome(None, ErrorCode.CONNECTION, None, _describe(exc))
        except httpx.TimeoutException as exc:
            # The request may have reached n8n: the retry carries the same idempotency key.
            return _Outcome(None, ErrorCode.TIMEOUT, None, _describe(exc))
        except httpx.TransportError as exc:
            return _Outcome(None, ErrorCode.CONNECTION, None, _describe(exc))
        # The client wraps the body stream in one that points back at the response. The body is
        # read and the stream closed by now: dropping the wrapper leaves no reference cycle, so
        # each call (about 26 objects) is freed at once instead of waiting for the collector.
        response.stream = _SPENT
        code = classify_status(response.status_code)
        retry_after = None
        if code is not None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.now())
        text = "" if code is None else response.text[:200]
        return _Outcome(
            response.status_code, code, retry_after, f"HTTP {response.status_code} {text}"
        )

    def _snooze_for(self, exc: CircuitOpen, base: float) -> float:
        """How long a row refused by an open breaker waits, without spending an attempt.

        OPEN: until the breaker half-opens, plus up to `base` of jitter so the probe goes
        first and the waiting rows do not all wake in the same instant. HALF_OPEN with its
        probes out: long enough for a probe to finish (a read timeout at most), jittered.
        """
        if exc.retry_in > 0:
            return exc.retry_in + self._rng.random() * base
        settle = max(base, self._read_timeout)
        return settle * (1.0 + self._rng.random())

    async def _snooze(self, row: OutboxRow, token: str, wait: float, cause: ErrorCode) -> str:
        now = self._clock.now()
        until = now + timedelta(seconds=wait)
        if not await self._store.snooze(row.id, token, next_attempt_at=until):
            return "lost_lease"
        self._emit(Snoozed(now, row.tenant_id, row.id, until, cause))
        return "snoozed"

    async def _dead_letter(
        self, row: OutboxRow, token: str, code: ErrorCode, error: AttemptError, attempts: int
    ) -> str:
        now = self._clock.now()
        ttl = self._policy(row.tenant_id).dlq_ttl
        entry = await self._store.move_to_dlq(
            row.id,
            token,
            error_code=code,
            message=error.message[:MAX_ERROR_MESSAGE],
            now=now,
            ttl=ttl,
            error=error,
        )
        if entry is None:
            return "lost_lease"
        self._emit(
            DeadLettered(
                now,
                row.tenant_id,
                row.workflow,
                row.id,
                entry.id,
                row.idempotency_key,
                code,
                attempts,
            )
        )
        return "dead_lettered"

    async def _maybe_purge(self) -> int:
        interval = self.settings.n8n_dlq_cleanup_interval_ms / 1000
        mono = self._clock.monotonic()
        if self._last_purge is not None and mono - self._last_purge < interval:
            return 0
        self._last_purge = mono
        now = self._clock.now()
        purged = await self._store.dlq_purge_expired(now=now)
        await self._store.purge_processed(older_than=now - DEFAULT_PROCESSED_RETENTION)
        return purged

    def _policy(self, tenant_id: str) -> TenantPolicy:
        policy = self._policies.get(tenant_id)
        if policy is None:
            policy = self._policies[tenant_id] = self.settings.tenant(tenant_id)
        return policy

    # -- events ---------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        for observer in self._observers:
            observer(event)

    def _on_transition(self, t: Transition) -> None:
        at: datetime = self._clock.now() - timedelta(seconds=self._clock.monotonic() - t.at)
        self._emit(BreakerChanged(at, t.name, t.old, t.new))

    def _on_quota_wait(self, tenant_id: str, waited: float) -> None:
        self._emit(QuotaWaited(self._clock.now(), tenant_id, waited))


async def _together(calls: list[Coroutine[Any, Any, object]]) -> None:
    """Run `calls` concurrently; a lone one (the usual case) runs in the caller's task."""
    if len(calls) == 1:
        await calls[0]
    else:
        await asyncio.gather(*calls)


def _encoded_headers(defaults: httpx.Headers, api_key: tuple[str, str] | None) -> tuple[_Raw, _Raw]:
    """The headers that go before and after a call's own, in the order `client.post` merges
    the client's defaults with `Content-Type`, the call's headers and the API key."""
    merged = httpx.Headers(defaults)
    merged["Content-Type"] = "application/json"
    if api_key is None:
        return tuple(merged.raw), ()
    merged.pop(api_key[0], None)
    return tuple(merged.raw), tuple(httpx.Headers([api_key]).raw)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_MESSAGE]
