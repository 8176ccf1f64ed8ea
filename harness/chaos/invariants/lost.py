"""nothing_lost: every delivery an intake accepted is, at every snapshot, delivered, pending or
in the DLQ (or dead-lettered and past its TTL, or delivered and past the outbox retention);
every 2xx answer belongs to an accepted event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.chaos.invariants._base import EPS, Findings, Violation
from harness.sim import SimRun
from reliability.events import Delivered

__all__ = ["check_nothing_lost"]


def check_nothing_lost(run: SimRun, params: Mapping[str, Any]) -> Findings:
    r = run.records
    out = Findings()
    expiry: dict[str, float] = {}
    for entry in r.dlq_entries.values():
        at = r.seconds(entry.expires_at)
        expiry[entry.idempotency_key] = max(at, expiry.get(entry.idempotency_key, 0.0))
    retention = r.settings.reliability_outbox_retention_hours * 3600
    purgeable = {
        ev.idempotency_key: t + retention for t, _, ev in r.events if isinstance(ev, Delivered)
    }
    keys = list(r.accepted_keys.items())
    for cp in r.checkpoints:
        for key, (tenant, event_id, t_acc) in keys[: cp.accepted]:
            out.checked += 1
            if key in cp.delivered or key in cp.pending or key in cp.dlq:
                continue
            if key in expiry and expiry[key] <= cp.t + EPS:
                continue  # dead-lettered and past its TTL: gone by design
            if key in purgeable and purgeable[key] <= cp.t + EPS:
                continue  # delivered and past the outbox retention: purged by design
            out.fail(
                Violation(
                    f"delivery {key} accepted at t={t_acc:.3f} is neither delivered, pending nor "
                    f"in the DLQ at t={cp.t:.3f}",
                    tenant,
                    event_id,
                    key,
                    {"accepted": t_acc, "checked": cp.t},
                    (event_id,),
                )
            )
            break
    accepted: dict[tuple[str, str], float] = {}
    for s in r.sends:
        if s.code == "ACCEPTED":
            accepted.setdefault((s.tenant, s.event_id), s.t)
        elif s.status is not None and 200 <= s.status < 300:
            out.checked += 1
            if (s.tenant, s.event_id) not in accepted:
                out.fail(
                    Violation(
                        f"answered {s.status} {s.code} but the event was never accepted",
                        s.tenant,
                        s.event_id,
                        s.event_id,
                        {"answered": s.t},
                        (s.event_id,),
                    )
                )
    out.notes.append(f"{len(r.checkpoints)} snapshots")
    return out
