"""no_double_processing: an event is accepted at most once per tenant; every legitimate event
answered 2xx was accepted; replays and forgeries get their codes; no delivery completes twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harness.chaos.invariants._base import Findings, Violation
from harness.sim import SimRun
from reliability.events import Delivered

__all__ = ["check_no_double_processing"]


_EXPECTED: Final = {
    "replay": {"STALE_TIMESTAMP"},
    "bad:tampered": {"BAD_SIGNATURE"},
    "bad:no-v1": {"MALFORMED_HEADER"},
    "bad:unparsable": {"MALFORMED_HEADER"},
    "bad:missing": {"MALFORMED_HEADER"},
}
_GOOD: Final = {"ACCEPTED", "DUPLICATE"}


def check_no_double_processing(run: SimRun, params: Mapping[str, Any]) -> Findings:
    r = run.records
    out = Findings()
    accepted: dict[tuple[str, str], float] = {}
    answered: set[tuple[str, str]] = set()
    for s in r.sends:
        if s.status is None:
            continue
        out.checked += 1
        key = (s.tenant, s.event_id)
        expected = _EXPECTED.get(s.kind, _GOOD)
        if s.code not in expected:
            out.fail(
                Violation(
                    f"{s.kind} request answered {s.status} {s.code}, expected "
                    f"{' or '.join(sorted(expected))}",
                    s.tenant,
                    s.event_id,
                    s.event_id,
                    {"answered": s.t},
                    (s.event_id,),
                )
            )
        if expected is _GOOD:
            answered.add(key)
        if s.code == "ACCEPTED":
            if key in accepted:
                out.fail(
                    Violation(
                        f"event processed twice (accepted at t={accepted[key]:.3f} and "
                        f"t={s.t:.3f})",
                        s.tenant,
                        s.event_id,
                        s.event_id,
                        {"first": accepted[key], "second": s.t},
                        (s.event_id,),
                    )
                )
            accepted.setdefault(key, s.t)
    for key in sorted(answered - accepted.keys()):
        out.fail(
            Violation(
                "legitimate event answered but never processed",
                key[0],
                key[1],
                key[1],
                needles=(key[1],),
            )
        )
    delivered: dict[str, float] = {}
    for t, _, ev in r.events:
        if isinstance(ev, Delivered):
            out.checked += 1
            if ev.idempotency_key in delivered:
                out.fail(
                    Violation(
                        f"delivery {ev.idempotency_key} completed twice",
                        ev.tenant_id,
                        None,
                        ev.idempotency_key,
                        {"first": delivered[ev.idempotency_key], "second": t},
                        (ev.tenant_id,),
                    )
                )
            delivered.setdefault(ev.idempotency_key, t)
    return out
