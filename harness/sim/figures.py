"""A run's numbers: headline figures and the series the report draws, from its records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from harness.sim.duplicates import by_cause, duplicate_sends
from harness.sim.records import Records, Send
from harness.sim.scenario import Scenario
from harness.sim.workflows import effects
from reliability.events import Attempted, BreakerChanged, DeadLettered, Delivered, Retrying, Snoozed

__all__ = ["RunSize", "figures", "series"]

_MAX_SERIES: Final = 2000
_LEGIT: Final = frozenset({"delivery", "duplicate", "burst", "resigned", "retry"})
"""Requests a legitimate Stripe sends (not replays of captured requests, not forgeries)."""


@dataclass(frozen=True, slots=True)
class RunSize:
    """What the figures need beyond the records."""

    events_generated: int
    trace_lines: int
    replay_comparison: bool


def figures(scenario: Scenario, r: Records, size: RunSize) -> dict[str, float | None]:
    """Headline numbers: traffic, outcomes, retries, breakers, calls at n8n, timings."""
    codes: dict[str, int] = {}
    for s in r.sends:
        codes[s.code] = codes.get(s.code, 0) + 1
    counts = _event_counts(r)
    delivered_at = counts.delivered_at
    journal = r.journal
    per_second: dict[int, int] = {}
    keys: dict[str | None, int] = {}
    for e in journal:
        per_second[int(e.t)] = per_second.get(int(e.t), 0) + 1
        keys[e.idempotency_key] = keys.get(e.idempotency_key, 0) + 1
    traffic_start = scenario.traffic.start
    if scenario.traffic.bursts:
        traffic_start = min(traffic_start, min(b.at for b in scenario.traffic.bursts))
    all_delivered = len(delivered_at) == len(r.accepted_keys) and bool(r.accepted_keys)
    last = max(delivered_at.values(), default=traffic_start)
    out: dict[str, float | None] = {
        "tenants": len(scenario.tenants),
        "events_generated": size.events_generated,
        "stripe_requests": len(r.sends),
        "events_accepted": len({(s.tenant, s.event_id) for s in r.sends if s.code == "ACCEPTED"}),
        "duplicates_refused": codes.get("DUPLICATE", 0),
        "rejected": sum(n for c, n in codes.items() if c not in ("ACCEPTED", "DUPLICATE", "DOWN")),
        "refused_while_down": codes.get("DOWN", 0),
        "deliveries_enqueued": len(r.accepted_keys),
        "delivered": len(delivered_at),
        "dead_lettered": counts.dead,
        "pending_at_end": len(r.checkpoints[-1].pending) if r.checkpoints else 0,
        "retries": counts.retries,
        "snoozes": counts.snoozes,
        "breaker_opens": counts.opens,
        "n8n_calls": len(journal),
        "n8n_duplicate_calls": sum(n - 1 for k, n in keys.items() if k is not None and n > 1),
        "n8n_duplicate_effects": sum(n - 1 for n in effects(journal).values() if n > 1),
        "peak_arrivals_per_s": max(per_second.values(), default=0),
        "peak_retries_per_s": max(counts.retry_seconds.values(), default=0),
        # None: not every delivery was made (never, within the run); JSON null.
        "time_until_all_delivered": round(last - traffic_start, 6) if all_delivered else None,
        "drains": len(r.drains),
        "dlq_purged": sum(c for _, _, c in r.purges),
        "dlq_retried": len(r.dlq_retried),
        "crashes": len(r.crashes),
        "trace_lines": size.trace_lines,
    }
    if size.replay_comparison:
        out.update(_replay_figures(r.sends))
    out.update(_duplicate_figures(r))
    if scenario.instances > 1:
        out["instances"] = scenario.instances
    return out


def _duplicate_figures(r: Records) -> dict[str, float | None]:
    """Duplicate sends (calls for a delivery n8n had already run) in all and per cause (only the
    causes that occurred)."""
    sends = duplicate_sends(r)
    out: dict[str, float | None] = {"n8n_duplicate_sends": len(sends)}
    out.update({f"duplicate_sends_{c}": n for c, n in by_cause(sends).items()})
    return out


@dataclass(slots=True)
class _Counts:
    delivered_at: dict[str, float]
    retry_seconds: dict[int, int]
    retries: int = 0
    snoozes: int = 0
    dead: int = 0
    opens: int = 0


def _event_counts(r: Records) -> _Counts:
    counts = _Counts({}, {})
    for t, _, ev in r.events:
        if isinstance(ev, Attempted) and ev.attempt > 1:
            second = int(t - ev.duration)
            counts.retry_seconds[second] = counts.retry_seconds.get(second, 0) + 1
        if isinstance(ev, Delivered):
            counts.delivered_at.setdefault(ev.idempotency_key, t)
        elif isinstance(ev, Retrying):
            counts.retries += 1
        elif isinstance(ev, Snoozed):
            counts.snoozes += 1
        elif isinstance(ev, DeadLettered):
            counts.dead += 1
        elif isinstance(ev, BreakerChanged) and ev.new.value == "OPEN":
            counts.opens += 1
    return counts


def series(r: Records, strategy: str) -> dict[str, list[dict[str, Any]]]:
    """What the report draws: retry delays against their bounds, breaker states over time, DLQ
    depth, purges, arrivals at n8n (each thinned to a bounded number of points) and, in a
    day-long run, every table's row count over time."""
    retry_events = [e for _, _, e in r.events if isinstance(e, Retrying)]
    stride = max(1, math.ceil(len(retry_events) / _MAX_SERIES))
    delays = [
        {
            "strategy": strategy,
            "attempt": rev.attempt,
            "delay": round(rev.delay, 6),
            "low": round(rev.bounds[0], 6),
            "high": round(rev.bounds[1], 6),
        }
        for rev in retry_events[::stride]
    ]
    timeline = [
        {"tenant": ev.tenant_id, "t": round(r.seconds(ev.at), 6), "state": ev.new.value}
        for _, _, ev in r.events
        if isinstance(ev, BreakerChanged)
    ][:_MAX_SERIES]
    bucket = max(1.0, math.ceil(r.end / 1000))
    arrivals: dict[int, int] = {}
    for e in r.journal:
        arrivals[int(e.t // bucket)] = arrivals.get(int(e.t // bucket), 0) + 1
    depth = r.dlq_depth
    dstride = max(1, math.ceil(len(depth) / 500))
    return {
        "retry_delays": delays,
        "breaker_timeline": timeline,
        "dlq_depth": [{"t": round(t, 6), "depth": d} for t, d in depth[::dstride]],
        "dlq_purges": [{"t": round(t, 6), "count": c} for t, _, c in r.purges if c][:_MAX_SERIES],
        "arrivals": [{"t": k * bucket, "count": v} for k, v in sorted(arrivals.items())],
        "table_rows": [
            {"t": round(t, 6), "table": table, "rows": n}
            for t, counts in r.table_rows
            for table, n in counts.items()
        ],
    }


def _replay_figures(sends: Sequence[Send]) -> dict[str, float]:
    """Replays accepted and legitimate events dropped, by the processed set and by the Step 06
    design's ledger-only guard."""
    ours: dict[tuple[str, str], int] = {}
    step06: dict[tuple[str, str], int] = {}
    legit: set[tuple[str, str]] = set()
    for s in sends:
        key = (s.tenant, s.event_id)
        if s.kind in _LEGIT and s.status is not None:
            legit.add(key)
        if s.code == "ACCEPTED":
            ours[key] = ours.get(key, 0) + 1
        if s.seed_guard == "processed":
            step06[key] = step06.get(key, 0) + 1
    return {
        "fixed_replays_accepted": sum(n - 1 for n in ours.values() if n > 1),
        "fixed_legitimate_dropped": sum(1 for k in legit if k not in ours),
        "step06_replays_accepted": sum(n - 1 for n in step06.values() if n > 1),
        "step06_legitimate_dropped": sum(1 for k in legit if k not in step06),
    }
