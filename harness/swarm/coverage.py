"""What a run exercised: counts of fault kinds, states and transitions, read from its records.

A swarm is only as good as the space it reaches. `coverage(run)` counts, for one simulated
run, what happened at the edges the invariants care about (breaker transitions per state, DLQ
codes, Retry-After paths, crash points, lease losses, n8n faults, Stripe delivery kinds), as a
flat `{"group:item": count}` mapping; `merge` adds such mappings up over many runs, and
`reached` lists the groups and items of `EXPECTED` that no run reached, so a report can say
what the swarm did *not* do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final

from harness.sim import SimRun
from reliability.errors import ErrorCode
from reliability.events import BreakerChanged, DeadLettered, QuotaWaited, Retrying, Snoozed

__all__ = ["EXPECTED", "coverage", "merge", "unreached"]

EXPECTED: Final[tuple[str, ...]] = (
    "breaker:CLOSED->OPEN",
    "breaker:OPEN->HALF_OPEN",
    "breaker:HALF_OPEN->CLOSED",
    "breaker:HALF_OPEN->OPEN",
    *(
        f"dlq:{code.value}"
        for code in (
            ErrorCode.HTTP_4XX,
            ErrorCode.HTTP_5XX,
            ErrorCode.HTTP_429,
            ErrorCode.TIMEOUT,
            ErrorCode.CONNECTION,
            ErrorCode.RETRY_BUDGET,
        )
    ),
    "retry:retry_after",
    "retry:retry_after_capped",
    "retry:backoff",
    "snooze:CIRCUIT_OPEN",
    "snooze:QUOTA",
    "quota:wait",
    "crash:with_work_in_flight",
    "crash:idle",
    "lease:lost",
    "dlq:probe",
    "dlq:purge",
    "dlq:manual_retry",
    "stripe:duplicate",
    "stripe:replay",
    "stripe:forged",
    "stripe:refused_while_down",
)
"""Items a healthy swarm should reach; a report lists those no run reached."""


def coverage(run: SimRun) -> dict[str, int]:
    """What one run exercised, as `{"group:item": count}` (zero counts left out)."""
    r = run.records
    c: Counter[str] = Counter()
    cap = run.records.settings.n8n_max_delay_ms / 1000
    for _, _, ev in r.events:
        if isinstance(ev, BreakerChanged):
            c[f"breaker:{ev.old.value}->{ev.new.value}"] += 1
        elif isinstance(ev, DeadLettered):
            c[f"dlq:{ev.error_code.value}"] += 1
        elif isinstance(ev, Retrying):
            if ev.retry_after is None:
                c["retry:backoff"] += 1
            else:
                c["retry:retry_after" if ev.retry_after <= cap else "retry:retry_after_capped"] += 1
        elif isinstance(ev, Snoozed):
            c[f"snooze:{ev.cause.value}"] += 1
        elif isinstance(ev, QuotaWaited):
            c["quota:wait"] += 1
    for _, _, killed in r.crashes:
        c["crash:with_work_in_flight" if killed else "crash:idle"] += 1
    for _, report in r.drains:
        c["lease:lost"] += report.lost_lease
    c["dlq:probe"] += len(r.probes)
    c["dlq:purge"] += sum(count for _, _, count in r.purges)
    c["dlq:manual_retry"] += sum(1 for x in r.retries if x.new_outbox_id is not None)
    for s in r.sends:
        if s.status is None:
            c["stripe:refused_while_down"] += 1
        elif s.code == "DUPLICATE":
            c["stripe:duplicate"] += 1
        elif s.kind == "replay":
            c["stripe:replay"] += 1
        elif s.kind.startswith("bad:"):
            c["stripe:forged"] += 1
    for e in r.journal:
        c[f"n8n:{e.fault or 'ok'}"] += 1
    return {k: v for k, v in sorted(c.items()) if v}


def merge(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Several runs' coverage added up, keys sorted."""
    total: Counter[str] = Counter()
    for one in counts:
        total.update(one)
    return dict(sorted(total.items()))


def unreached(total: Mapping[str, int]) -> list[str]:
    """The `EXPECTED` items no run reached."""
    return [item for item in EXPECTED if not total.get(item)]
