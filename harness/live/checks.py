"""Invariants of a run on real processes, checked against Postgres and the fake n8n's journal.

The runners take a `DbSnapshot` (the outbox, the DLQ and the processed-event set of the run's
schema) and the fake's `GET /__journal`, then call these pure checks. Each returns one
`InvariantResult`; the details name counts and a few examples, enough to start looking.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

from harness.fakes.duplicates import UNEXPLAINED, Call, DuplicateSend, Kill, by_cause, classify
from harness.verdict import InvariantResult
from reliability.routing import idempotency_key

__all__ = [
    "Accepted",
    "DbSnapshot",
    "DeliveryRow",
    "InvariantResult",
    "N8nCall",
    "calls_from_journal",
    "check_delivered_reached_n8n",
    "check_drained",
    "check_duplicates_bounded",
    "check_duplicates_explained",
    "check_no_double_processing",
    "check_nothing_lost",
    "check_quota",
    "duplicate_sends",
    "read_snapshot",
]

_EXAMPLES: Final = 5


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event the service answered 2xx (new or duplicate) to a load user or sender."""

    tenant_id: str
    event_id: str
    event_type: str


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """An outbox row (`done` when delivered) or a DLQ entry (`dead` set)."""

    key: str
    tenant_id: str
    event_id: str | None
    workflow: str
    done: bool = False
    dead: bool = False


@dataclass(frozen=True, slots=True)
class DbSnapshot:
    processed: frozenset[tuple[str, str]]
    outbox: tuple[DeliveryRow, ...]
    dlq: tuple[DeliveryRow, ...]

    @property
    def pending(self) -> tuple[DeliveryRow, ...]:
        return tuple(r for r in self.outbox if not r.done)


@dataclass(frozen=True, slots=True)
class N8nCall:
    """One call as the fake n8n's journal recorded it."""

    tenant: str
    path: str
    key: str | None
    status: int | None
    outcome: str

    @property
    def succeeded(self) -> bool:
        return self.outcome == "answered" and self.status is not None and 200 <= self.status < 300


def read_snapshot(conn: psycopg.Connection[Any]) -> DbSnapshot:
    """The run's outbox, DLQ and processed-event set, read in one repeatable-read view."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        processed = conn.execute("SELECT tenant_id, event_id FROM processed_events").fetchall()
        outbox = conn.execute(
            "SELECT idempotency_key, tenant_id, event_id, workflow, done_at IS NOT NULL FROM outbox"
        ).fetchall()
        dlq = conn.execute(
            "SELECT idempotency_key, tenant_id, event_id, workflow_name FROM n8n_dlq"
        ).fetchall()
    return DbSnapshot(
        processed=frozenset((str(t), str(e)) for t, e in processed),
        outbox=tuple(
            DeliveryRow(str(k), str(t), e, str(w), done=bool(d)) for k, t, e, w, d in outbox
        ),
        dlq=tuple(DeliveryRow(str(k), str(t), e, str(w), dead=True) for k, t, e, w in dlq),
    )


def calls_from_journal(journal: Mapping[str, Any]) -> tuple[N8nCall, ...]:
    """The webhook calls of a `GET /__journal` answer."""
    return tuple(
        N8nCall(
            tenant=str(e.get("tenant", "")),
            path=str(e.get("path", "")),
            key=e.get("idempotency_key"),
            status=e.get("status"),
            outcome=str(e.get("outcome", "")),
        )
        for e in journal.get("entries", [])
    )


def _examples(items: Iterable[object]) -> str:
    shown = [str(i) for i, _ in zip(items, range(_EXAMPLES), strict=False)]
    return ", ".join(shown)


def check_nothing_lost(
    accepted: Sequence[Accepted],
    snap: DbSnapshot,
    routes: Mapping[str, Sequence[str]],
) -> InvariantResult:
    """Every accepted event is recorded; each of its deliveries is done, pending or in the DLQ."""
    rows = {r.key: r for r in (*snap.outbox, *snap.dlq)}
    unrecorded: list[str] = []
    missing: list[str] = []
    counts: Counter[str] = Counter()
    for event in {(a.tenant_id, a.event_id): a for a in accepted}.values():
        if (event.tenant_id, event.event_id) not in snap.processed:
            unrecorded.append(f"{event.tenant_id}/{event.event_id}")
        for workflow in routes.get(event.event_type, ()):
            row = rows.get(idempotency_key(event.tenant_id, event.event_id, workflow))
            if row is None:
                missing.append(f"{event.tenant_id}/{event.event_id}/{workflow}")
            else:
                counts["dead-lettered" if row.dead else "delivered" if row.done else "pending"] += 1
    passed = not unrecorded and not missing
    summary = ", ".join(f"{counts[k]} {k}" for k in ("delivered", "pending", "dead-lettered"))
    details = f"{len(accepted)} accepted answers; deliveries: {summary}"
    if unrecorded:
        details += f"; {len(unrecorded)} accepted but not recorded: {_examples(unrecorded)}"
    if missing:
        details += f"; {len(missing)} deliveries lost: {_examples(missing)}"
    return InvariantResult("nothing lost", passed, len(accepted), details)


def check_no_double_processing(
    snap: DbSnapshot, calls: Sequence[N8nCall], *, crashes: int = 0
) -> InvariantResult:
    """No delivery enqueued twice (one row per idempotency key across outbox and DLQ), and,
    without crashes, no key answered 2xx twice at n8n (with crashes,
    `check_duplicates_bounded` judges the repeats)."""
    rows = Counter(r.key for r in (*snap.outbox, *snap.dlq))
    twice = sorted(k for k, n in rows.items() if n > 1)
    ok_calls = Counter(c.key for c in calls if c.key is not None and c.succeeded)
    delivered_twice = [] if crashes else sorted(k for k, n in ok_calls.items() if n > 1)
    passed = not twice and not delivered_twice
    details = (
        f"{len(snap.processed)} events processed, {len(rows)} deliveries, "
        f"{len(twice)} enqueued twice, {len(delivered_twice)} delivered twice at n8n"
    )
    if twice:
        details += f"; enqueued twice: {_examples(twice)}"
    if delivered_twice:
        details += f"; delivered twice: {_examples(delivered_twice)}"
    return InvariantResult("no event processed twice", passed, len(rows) + len(ok_calls), details)


def check_quota(
    peaks: Mapping[str, int], limits: Mapping[str, int], *, global_max: int
) -> InvariantResult:
    """Peak in-flight calls per tenant at the fake never above the tenant's limit (nor the max)."""
    over = {
        t: (peak, min(limits.get(t, global_max), global_max))
        for t, peak in peaks.items()
        if peak > min(limits.get(t, global_max), global_max)
    }
    top = max(peaks.values(), default=0)
    details = f"{len(peaks)} tenants called, highest peak in flight {top}"
    if over:
        shown = _examples(f"{t}: {p} > {lim}" for t, (p, lim) in sorted(over.items()))
        details += f"; over the limit: {shown}"
    return InvariantResult("per-tenant quota respected", not over, len(peaks), details)


def check_drained(snap: DbSnapshot, *, completed: bool, elapsed: float) -> InvariantResult:
    """After the bounded drain nothing is left pending (delivered or dead-lettered)."""
    pending = snap.pending
    details = f"{len(pending)} rows pending after draining for {elapsed:.1f}s"
    if pending:
        details += f": {_examples(r.key for r in pending)}"
    return InvariantResult(
        "drained to completion", completed and not pending, len(snap.outbox), details
    )


def check_delivered_reached_n8n(snap: DbSnapshot, calls: Sequence[N8nCall]) -> InvariantResult:
    """Every row marked delivered has a 2xx answer at n8n carrying its idempotency key."""
    ok_keys = {c.key for c in calls if c.succeeded}
    unseen = sorted(r.key for r in snap.outbox if r.done and r.key not in ok_keys)
    done = sum(1 for r in snap.outbox if r.done)
    details = f"{done} delivered rows, {len(unseen)} without a 2xx call at n8n"
    if unseen:
        details += f": {_examples(unseen)}"
    return InvariantResult("delivered means n8n answered 2xx", not unseen, done, details)


def check_duplicates_bounded(
    calls: Sequence[N8nCall], *, crashes: int, max_in_flight: int
) -> InvariantResult:
    """Duplicate executions at n8n: only from crashes, bounded, and always under one key.

    Each crash can repeat at most the calls that were in flight in the killed process (at most
    `max_in_flight`), and one key at most once per crash. Every call must carry a key naming its
    own tenant and workflow, so any repeat of a delivery carries the same key.
    """
    ok = Counter(c.key for c in calls if c.succeeded and c.key is not None)
    extra = {k: n - 1 for k, n in ok.items() if n > 1}
    total_extra = sum(extra.values())
    per_key_over = sorted(k for k, n in extra.items() if n > crashes)
    keyless = sum(1 for c in calls if not c.key)
    mismatched: dict[str, list[str]] = defaultdict(list)
    for c in calls:
        if c.key and not (c.key.startswith(f"{c.tenant}:") and c.key.endswith(f":{c.path}")):
            mismatched[c.key].append(f"{c.tenant}/{c.path}")
    bound = crashes * max_in_flight
    passed = total_extra <= bound and not per_key_over and not keyless and not mismatched
    details = (
        f"{total_extra} duplicate deliveries over {len(extra)} keys "
        f"(bound {bound} = {crashes} crashes x {max_in_flight} in flight), "
        f"{keyless} calls without a key, {len(mismatched)} keys not matching their call"
    )
    if per_key_over:
        details += f"; keys repeated more than once per crash: {_examples(per_key_over)}"
    if mismatched:
        details += f"; mismatched: {_examples(mismatched)}"
    return InvariantResult("duplicates at n8n bounded by crashes", passed, len(calls), details)


KILL_GRACE: Final = 2.0
"""Seconds after a call ended at n8n in which a kill still explains its repeat: n8n answered,
and the process died before its delivery was recorded (`complete` and its retries)."""


def duplicate_sends(
    journal: Mapping[str, Any],
    kills: Sequence[datetime],
    *,
    read_timeout: float,
    grace: float = KILL_GRACE,
) -> list[DuplicateSend]:
    """The duplicate sends in a `GET /__journal` answer, with their causes
    (`harness.fakes.duplicates`): a kill (at a wall time; which process made a call is not
    known, so a kill explains any call in flight then, or ended `grace` seconds before), a
    timeout (an answer that took the dispatcher's `read_timeout` is one it never saw), a lost or
    an error answer."""
    entries = [e for e in journal.get("entries", []) if isinstance(e, Mapping)]
    if not entries:
        return []
    # The journal's seconds start at its epoch, on the same wall clock as the kills.
    first = entries[0]
    epoch = datetime.fromisoformat(str(first["wall"])).timestamp() - float(first["t"])
    calls = [
        Call(
            seq=int(e["seq"]),
            t=float(e["t"]),
            end=None if e.get("finished_t") is None else float(e["finished_t"]),
            tenant=str(e.get("tenant", "")),
            key=e.get("idempotency_key"),
            ran=bool(e.get("ran")),
            outcome=str(e.get("outcome", "")),
            status=e.get("status"),
        )
        for e in entries
    ]
    end = max((c.end if c.end is not None else c.t for c in calls), default=0.0)
    on_journal = [Kill(k.timestamp() - epoch) for k in kills]
    return classify(calls, on_journal, {}, end=end, grace=grace, deadline=read_timeout)


def check_duplicates_explained(sends: Sequence[DuplicateSend]) -> InvariantResult:
    """Every duplicate send at n8n has a cause: a kill, a timeout, a lost or an error answer."""
    causes = by_cause(sends)
    unexplained = [d for d in sends if d.cause == UNEXPLAINED]
    words = ", ".join(f"{n} {c}" for c, n in causes.items()) or "none"
    details = f"{len(sends)} duplicate sends at n8n by cause: {words}"
    if unexplained:
        details += "; unexplained (no kill near the earlier 2xx): " + _examples(
            f"{d.key} (calls #{d.earlier} and #{d.seq})" for d in unexplained
        )
    return InvariantResult("every duplicate send has a cause", not unexplained, len(sends), details)
