"""outcome_bounds: the scenario's own bounds on figures (delivered ratio, dead letters, time
until all delivered, duplicate calls, size of the run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.chaos.invariants._base import Findings, Violation
from harness.sim import SimRun

__all__ = ["check_outcome_bounds"]


def check_outcome_bounds(run: SimRun, params: Mapping[str, Any]) -> Findings:
    # Every figure but time_until_all_delivered is always a number; that one is None for never.
    f = {k: v for k, v in run.figures.items() if v is not None}
    delivered_in = run.figures.get("time_until_all_delivered")
    out = Findings()
    enqueued = max(1.0, f["deliveries_enqueued"])
    checks: list[tuple[str, float, bool]] = []
    for bound, raw in params.items():
        value = float(raw)
        if bound == "min_delivered_ratio":
            actual = f["delivered"] / enqueued
            checks.append((bound, actual, actual >= value))
        elif bound == "max_dead_lettered":
            checks.append((bound, f["dead_lettered"], f["dead_lettered"] <= value))
        elif bound == "max_dead_lettered_ratio":
            actual = f["dead_lettered"] / enqueued
            checks.append((bound, actual, actual <= value))
        elif bound == "all_delivered_within":
            actual = float("inf") if delivered_in is None else delivered_in
            checks.append((bound, actual, 0 <= actual <= value))
        elif bound == "max_duplicate_calls":
            checks.append((bound, f["n8n_duplicate_calls"], f["n8n_duplicate_calls"] <= value))
        elif bound == "min_events":
            checks.append((bound, f["events_generated"], f["events_generated"] >= value))
        elif bound == "min_tenants":
            checks.append((bound, f["tenants"], f["tenants"] >= value))
    for bound, actual, ok in checks:
        out.checked += 1
        if not ok:
            out.fail(Violation(f"{bound}: bound {params[bound]}, actual {actual:g}"))
    out.notes.append(", ".join(f"{b}={a:g}" for b, a, _ in checks))
    return out
