"""exactly_once_effect: for every idempotency key, at most one n8n execution took effect (got
past the workflow's Remove Duplicates node), however often the delivery was sent: after
timeouts, crashes and lost leases the dispatcher sends it again, and only n8n's dedupe keeps
the effect single. Without an enabled Remove Duplicates node every execution is an effect, and
each key that ran twice is reported as the duplicate effect it is."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from harness.chaos.invariants._base import Findings, Violation
from harness.sim import SimRun
from harness.sim.workflows import effects

__all__ = ["check_exactly_once_effect"]


def check_exactly_once_effect(run: SimRun, params: Mapping[str, Any]) -> Findings:
    journal = run.records.journal
    out = Findings()
    calls: dict[str, list[float]] = defaultdict(list)
    tenants: dict[str, str] = {}
    for e in journal:
        if e.idempotency_key is not None and e.ran and not e.dropped:
            calls[e.idempotency_key].append(e.t)
            tenants[e.idempotency_key] = e.tenant
    taken = effects(journal)
    keyed = [e.idempotency_key for e in journal if e.idempotency_key is not None]
    sent = set(keyed)
    dedupe = run.scenario.n8n_dedupe
    for key in sorted(sent):
        out.checked += 1
        n = taken.get(key, 0)
        if n > 1:
            times = calls[key]
            why = "" if dedupe else " (no Remove Duplicates node: n8n.dedupe is false)"
            out.fail(
                Violation(
                    f"delivery {key} took effect {n} times at n8n{why}",
                    tenants[key],
                    None,
                    key,
                    {"first": times[0], "second": times[1]},
                    (key,),
                )
            )
    duplicate_calls = len(keyed) - len(sent)
    duplicate_effects = sum(n - 1 for n in taken.values() if n > 1)
    out.notes.append(
        f"Remove Duplicates {'on' if dedupe else 'off'}: {duplicate_calls} duplicate calls, "
        f"{duplicate_effects} duplicate effects"
    )
    return out
