"""Duplicate sends in a fake n8n's journal, each with its cause.

A duplicate send is a call for a delivery (idempotency key) whose workflow an earlier call
already ran: n8n did the work twice. Delivery to n8n is at-least-once by nature, so some
duplicates are forced; each is explained by what happened to the latest earlier call that ran
(`CAUSES`):

- `crash`: the process that made it was killed while it was in flight, or within `grace`
  seconds after it ended (n8n answered, the process died before recording the delivery);
- `lost_lease`, `store_failed`: the layer said so itself (its `DuplicateSent` event): n8n
  answered 2xx but the row was no longer the caller's, or recording the delivery failed;
- `timeout`: the caller stopped waiting (its deadline or read timeout) while n8n ran it; over
  a network the fake may finish a 2xx a moment after the caller gave up, so an answer that
  took the caller's `deadline` (less `slack`) counts as one the caller never saw;
- `no_answer`: the connection failed before a whole answer reached the caller;
- `error_answer`: n8n ran the workflow and answered an error status, which the layer retries.

Anything else is `unexplained`: the earlier call ran and was answered 2xx, no crash and no
report of the layer explain the repeat. That is a bug. The simulator and the live crash test
both classify with `classify`; they differ in what they know (the simulator knows which
instance made each call, a live run only when each process was killed).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CAUSES",
    "UNEXPLAINED",
    "Call",
    "DuplicateSend",
    "Kill",
    "by_cause",
    "classify",
]

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
class Call:
    """What the classification needs of one journal entry (times in the journal's seconds)."""

    seq: int
    t: float
    end: float | None
    """When the call ended at n8n; None while it had not (the run's end counts)."""
    tenant: str
    key: str | None
    ran: bool
    outcome: str
    status: int | None
    instance: int | None = None
    """The process that made it, when known."""


@dataclass(frozen=True, slots=True)
class Kill:
    """A process killed at `at` (journal seconds); `instance` None: which one is not known, so
    it explains any call in flight then."""

    at: float
    instance: int | None = None


@dataclass(frozen=True, slots=True)
class DuplicateSend:
    """Call `seq` sent delivery `key` again after call `earlier` had run its workflow."""

    seq: int
    t: float
    tenant: str
    key: str
    instance: int | None
    earlier: int
    earlier_t: float
    earlier_instance: int | None
    cause: str

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "tenant": self.tenant,
            "call": self.seq,
            "t": round(self.t, 6),
            "earlier_call": self.earlier,
            "earlier_t": round(self.earlier_t, 6),
            "cause": self.cause,
        }


def classify(
    calls: Sequence[Call],
    kills: Sequence[Kill],
    reported: Mapping[str, Sequence[tuple[float, str]]],
    *,
    end: float,
    grace: float = 0.0,
    deadline: float | None = None,
    slack: float = 0.05,
) -> list[DuplicateSend]:
    """Every duplicate send among `calls` (in arrival order) with its cause. `reported` holds,
    per key, the layer's own duplicate reports as (when, cause), in time order; `end` is when
    the run ended (for calls that never did); `deadline` the seconds a caller waits for an
    answer (None: the journal knows when callers gave up)."""
    late = None if deadline is None else deadline - slack
    latest_run: dict[str, Call] = {}
    out: list[DuplicateSend] = []
    for c in calls:
        if c.key is None:
            continue
        prior = latest_run.get(c.key)
        if prior is not None:
            cause = _cause(prior, kills, reported.get(c.key, ()), end, grace, late)
            out.append(
                DuplicateSend(
                    c.seq,
                    c.t,
                    c.tenant,
                    c.key,
                    c.instance,
                    prior.seq,
                    prior.t,
                    prior.instance,
                    cause,
                )
            )
        if c.ran:
            latest_run[c.key] = c
    return out


def by_cause(sends: Sequence[DuplicateSend]) -> dict[str, int]:
    """How many duplicate sends each cause explains (only causes that occurred, in `CAUSES`
    order)."""
    counts = dict.fromkeys(CAUSES, 0)
    for d in sends:
        counts[d.cause] += 1
    return {cause: n for cause, n in counts.items() if n}


def _cause(
    call: Call,
    kills: Sequence[Kill],
    reported: Sequence[tuple[float, str]],
    end: float,
    grace: float,
    late: float | None,
) -> str:
    """Why the delivery was sent again after `call` ran its workflow."""
    stop = call.end if call.end is not None else end
    for k in kills:
        if k.instance is not None and k.instance != call.instance:
            continue
        if call.t - _EPS <= k.at <= stop + grace + _EPS:
            return "crash"
    i = bisect_left(reported, (call.t - _EPS, ""))
    if i < len(reported) and reported[i][0] <= stop + _EPS:
        return reported[i][1]
    if call.outcome in _TIMED_OUT or (late is not None and stop - call.t >= late):
        return "timeout"
    if call.outcome in _NO_ANSWER:
        return "no_answer"
    if call.status is not None and not 200 <= call.status < 300:
        return "error_answer"
    return UNEXPLAINED
