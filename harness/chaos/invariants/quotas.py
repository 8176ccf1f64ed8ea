"""quotas: per tenant, calls in flight at the fake n8n never exceed the tenant's limit clamped to
`N8N_MAX_CONCURRENCY` (calls cut off by a crash end at the crash). The clamp is per tenant: the
sum over tenants may exceed it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from harness.chaos.invariants._base import Findings, Violation
from harness.sim import SimRun

__all__ = ["check_quotas"]


def check_quotas(run: SimRun, params: Mapping[str, Any]) -> Findings:
    r = run.records
    out = Findings()
    global_max = r.settings.n8n_max_concurrency
    crash_times = sorted(at for at, _, _ in r.crashes)
    points: dict[str, list[tuple[float, int, int, int]]] = defaultdict(list)
    for e in r.journal:
        end = e.finished_t
        if end is None:
            later = [c for c in crash_times if c >= e.t]
            end = later[0] if later else r.end
        # At one instant: ends of earlier calls, then each call's start (and, if it took no
        # time, its own end right after it), in arrival order.
        points[e.tenant].append((e.t, 1, e.seq, 0))
        points[e.tenant].append((end, 0, e.seq, 0) if end > e.t else (end, 1, e.seq, 1))
    peaks: dict[str, int] = {}
    for tenant, pts in points.items():
        pts.sort()
        # The limit the layer must keep, from the scenario's settings (not the dispatcher's).
        limit = min(r.settings.tenant(tenant).concurrency_limit, global_max)
        out.checked += 1
        level = peak = 0
        for t, kind, seq, closing in pts:
            level += 1 if kind and not closing else -1
            if level > peak:
                peak = level
                if peak > limit:
                    out.fail(
                        Violation(
                            f"{peak} calls in flight at n8n, above the tenant's limit {limit}",
                            tenant,
                            None,
                            f"n8n call #{seq}",
                            {"at": t},
                            (tenant, "attempt"),
                        )
                    )
                    break
        peaks[tenant] = peak
    top = max(peaks.values(), default=0)
    out.notes.append(f"peak in flight per tenant {top}, global max {global_max}")
    return out
