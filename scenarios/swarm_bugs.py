"""Bugs the swarm must find: each one a `Hooks` that breaks the layer on purpose, with the
invariant that should catch it. Used by `scenarios/test_swarm_bugs.py` (a few runs each) and
`benchmarks/swarm_bench.py` (runs needed and shrunk size per bug, over many seeds)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from harness.sim import Hooks
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.store import Store

__all__ = ["BUGS", "Bug"]


@dataclass(frozen=True, slots=True)
class Bug:
    name: str
    invariant: str
    hooks: Hooks
    description: str


def _forgets_the_window(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
    """Breakers that never let a failure age out: every failure counts, however old."""
    forever = replace(settings, n8n_circuit_breaker_window_ms=10**15)
    return Dispatcher(forever, *args, **kwargs)


def _quota_off_by_one(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
    """Quotas that let one call more through than the tenant's limit."""
    tenants = {
        t: replace(
            c, concurrency_limit=(c.concurrency_limit or settings.n8n_default_concurrency) + 1
        )
        for t, c in settings.tenants.items()
    }
    loose = replace(
        settings,
        tenants=tenants,
        n8n_default_concurrency=settings.n8n_default_concurrency + 1,
        n8n_max_concurrency=settings.n8n_max_concurrency + 1,
    )
    return Dispatcher(loose, *args, **kwargs)


class _LeaseBlind:
    """A store whose drain claims do not check the lease: a due row that another worker holds
    is handed out again (with the holder's token, as the row stands)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim_due(self, limit: int, *, now: datetime, lease: timedelta) -> Any:
        rows = await self._inner.claim_due(limit, now=now, lease=lease)
        taken = {r.id for r in rows}
        held = [
            r
            for r in await self._inner.outbox_rows()  # type: ignore[attr-defined]
            if r.id not in taken
            and r.next_attempt_at <= now
            and r.locked_until is not None
            and r.locked_until > now
        ]
        return [*rows, *held[: max(0, limit - len(rows))]]


class _TtlOffByOne:
    """DLQ reads that keep an entry visible for one second past its `expires_at`."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def dlq_get(self, entry_id: str, *, now: datetime) -> Any:
        return await self._inner.dlq_get(entry_id, now=now - timedelta(seconds=1))

    async def dlq_list(self, *args: Any, now: datetime, **kwargs: Any) -> Any:
        return await self._inner.dlq_list(*args, now=now - timedelta(seconds=1), **kwargs)


BUGS: tuple[Bug, ...] = (
    Bug(
        "breaker-forgets-window",
        "breaker_thresholds",
        Hooks(dispatcher=_forgets_the_window),
        "a breaker that forgets the window: failures never age out",
    ),
    Bug(
        "quota-off-by-one",
        "quotas",
        Hooks(dispatcher=_quota_off_by_one),
        "a quota off by one: limit + 1 calls in flight per tenant",
    ),
    Bug(
        "lease-not-checked",
        "no_double_processing",
        Hooks(store=lambda s: _LeaseBlind(s)),  # type: ignore[arg-type]
        "a lease that is not checked: a drain claims rows another worker holds",
    ),
    Bug(
        "dlq-ttl-off-by-one-second",
        "dlq_ttl",
        Hooks(store=lambda s: _TtlOffByOne(s)),  # type: ignore[arg-type]
        "a DLQ TTL off by one second: entries visible until expires_at + 1 s",
    ),
)
