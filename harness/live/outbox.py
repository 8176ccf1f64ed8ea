"""The run's outbox seen from outside the service: what is pending, and draining it to the end.

Reads go through plain autocommit connections on the run's schema, never writes; draining goes
through the service's own `POST /api/cron/drain`, as the external cron calls it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from harness.live.errors import StackError
from harness.live.stack import Stack
from reliability.clock import Clock

__all__ = ["DrainSummary", "OutboxView", "drain_until_idle"]


@dataclass(frozen=True, slots=True)
class DrainSummary:
    """What draining to completion did: calls made, totals of the drain answers, rows left."""

    calls: int
    totals: Mapping[str, int]
    pending_left: int
    elapsed: float
    completed: bool


class OutboxView:
    """Counts of a run's outbox and DLQ, read from its schema."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A plain autocommit connection on the run's schema (for checks, never for writes)."""
        if not self._stack.db_url:
            raise StackError("the stack is not started")
        with psycopg.connect(self._stack.db_url, autocommit=True, connect_timeout=5) as conn:
            yield conn

    def pending_count(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetchone()
        return int(row[0]) if row else 0

    def dlq_depth(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT count(*) FROM n8n_dlq WHERE expires_at > now()").fetchone()
        return int(row[0]) if row else 0

    def seconds_until_due(self) -> float:
        """Seconds until the earliest pending row is due and free (0 when one is already)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at)))"
                " - now() FROM outbox WHERE done_at IS NULL"
            ).fetchone()
        if not row or row[0] is None:
            return 0.0
        wait: timedelta = row[0]
        return max(wait.total_seconds(), 0.0)


async def drain_until_idle(
    stack: Stack, clock: Clock, *, timeout: float, index: int = 0, max_calls: int = 10_000
) -> DrainSummary:
    """Call drain until no outbox row is pending, waiting for the next due row in between.

    Bounded by `timeout` seconds and `max_calls` calls; `completed` says whether it got there
    (rows held by a breaker snooze or a lease may outlive the bound).
    """
    view = OutboxView(stack)
    started = clock.monotonic()
    totals: dict[str, int] = {}
    calls = 0
    pending = view.pending_count()
    while pending and calls < max_calls:
        counts = await stack.drain(index)
        calls += 1
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        pending = view.pending_count()
        remaining = timeout - (clock.monotonic() - started)
        if not pending or remaining <= 0:
            break
        if not counts.get("claimed", 0):
            await clock.sleep(min(max(view.seconds_until_due(), 0.05), 1.0, remaining))
    return DrainSummary(
        calls=calls,
        totals=totals,
        pending_left=pending,
        elapsed=clock.monotonic() - started,
        completed=pending == 0,
    )
