"""Duplicate sends at n8n, each with its cause.

A duplicate send is a call at n8n for a delivery whose workflow an earlier call already ran: n8n
did the work twice. Delivery to n8n is at-least-once by nature, so some duplicates are forced,
and each is explained by what happened to the latest earlier call that ran (`CAUSES`):

- `crash`: the instance that made it crashed while it was in flight, or before it was recorded;
- `lost_lease`, `store_failed`: the layer said so itself (`DuplicateSent`): n8n answered 2xx but
  the row was no longer this instance's, or recording the delivery failed;
- `timeout`: the caller stopped waiting (its deadline or read timeout) while n8n ran it;
- `no_answer`: the connection failed before a whole answer reached the caller;
- `error_answer`: n8n ran the workflow and answered an error status, which the layer retries.

Anything else is `unexplained`: the earlier call ran, was answered 2xx, its instance lived and
the layer reported nothing, yet the delivery was sent again. That is a bug.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from harness.fakes.journal import JournalEntry
from harness.sim.records import Records
from reliability.events import DuplicateSent

__all__ = ["CAUSES", "UNEXPLAINED", "DuplicateSend", "duplicate_sends"]

UNEXPLAINED: Final = "unexplained"
CAUSES: Final = (
    "crash",
    "lost_lease",
    "store_failed",
    "timeout",
    "no_answer",
    "error_answer",
    UNEXPLAINED,
)
_TIMED_OUT: Final = frozenset({"gave_up", "hang"})
_NO_ANSWER: Final = frozenset({"reset", "closed", "truncated", "malformed"})
_EPS: Final = 1e-6


@dataclass(frozen=True, slots=True)
class DuplicateSend:
    """Call `seq` sent delivery `key` again after call `earlier` had run its workflow."""

    seq: int
    t: float
    tenant: str
    key: str
    instance: int
    earlier: int
    earlier_t: float
    earlier_instance: int
    cause: str


def duplicate_sends(r: Records) -> list[DuplicateSend]:
    """Every duplicate send of the run with its cause, in the order they reached n8n."""
    callers = r.callers or (1,) * len(r.journal)
    reported = _reported(r)
    latest_run: dict[str, tuple[JournalEntry, int]] = {}
    out: list[DuplicateSend] = []
    for e, instance in zip(r.journal, callers, strict=True):
        key = e.idempotency_key
        if key is None:
            continue
        before = latest_run.get(key)
        if before is not None:
            prior, prior_instance = before
            cause = _cause(r, prior, prior_instance, reported.get(key, []))
            out.append(
                DuplicateSend(
                    e.seq, e.t, e.tenant, key, instance, prior.seq, prior.t, prior_instance, cause
                )
            )
        if e.ran:
            latest_run[key] = (e, instance)
    return out


def _reported(r: Records) -> dict[str, list[tuple[float, str]]]:
    """(when, cause) of each duplicate the layer reported, per delivery key, in time order."""
    out: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for t, _, ev in r.events:
        if isinstance(ev, DuplicateSent):
            out[ev.idempotency_key].append((t, ev.cause))
    return out


def _cause(r: Records, call: JournalEntry, instance: int, reported: list[tuple[float, str]]) -> str:
    """Why the delivery was sent again after `call` ran its workflow."""
    end = call.finished_t if call.finished_t is not None else r.end
    for who, at, _ in r.downtime:
        # In flight at the crash, or answered at the very instant of it (not yet recorded).
        if who == instance and call.t - _EPS <= at <= end + _EPS:
            return "crash"
    i = bisect_left(reported, (call.t - _EPS, ""))
    if i < len(reported) and reported[i][0] <= end + _EPS:
        return reported[i][1]
    if call.outcome in _TIMED_OUT:
        return "timeout"
    if call.outcome in _NO_ANSWER:
        return "no_answer"
    if call.status is not None and not 200 <= call.status < 300:
        return "error_answer"
    return UNEXPLAINED
