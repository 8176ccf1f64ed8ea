"""A simulated run's duplicate sends at n8n, with their causes (`harness.fakes.duplicates`).

The simulator knows which instance made each call (`Records.callers`) and when each instance
was down (`Records.downtime`), so a crash explains only the calls of the instance that crashed;
the layer's own reports are its `DuplicateSent` events. Store calls take no virtual time, so a
crash explains a call only while it was in flight (no grace after it).
"""

from __future__ import annotations

from collections import defaultdict

from harness.fakes.duplicates import (
    CAUSES,
    UNEXPLAINED,
    Call,
    DuplicateSend,
    Kill,
    by_cause,
    classify,
)
from harness.sim.records import Records
from reliability.events import DuplicateSent

__all__ = ["CAUSES", "UNEXPLAINED", "DuplicateSend", "by_cause", "duplicate_sends"]


def duplicate_sends(r: Records) -> list[DuplicateSend]:
    """Every duplicate send of the run with its cause, in the order they reached n8n."""
    callers = r.callers or (1,) * len(r.journal)
    calls = [
        Call(e.seq, e.t, e.finished_t, e.tenant, e.idempotency_key, e.ran, e.outcome, e.status, i)
        for e, i in zip(r.journal, callers, strict=True)
    ]
    kills = [Kill(at, instance) for instance, at, _ in r.downtime]
    reported: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for t, _, ev in r.events:
        if isinstance(ev, DuplicateSent):
            reported[ev.idempotency_key].append((t, ev.cause))
    return classify(calls, kills, reported, end=r.end)
