"""no_double_processing: an event is accepted at most once per tenant; every legitimate event
answered 2xx was accepted; replays and forgeries get their codes; no delivery completes twice;
no delivery is in flight twice at once at n8n (its lease holds it: only a crash, which cuts
its call short, lets another claimer send it again); and every duplicate send (a call for a
delivery whose workflow already ran) has a cause: a crash of the instance that sent it, a lost
lease, a timeout, a lost or error answer (`harness.sim.duplicates`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Final

from harness.chaos.invariants._base import EPS, Findings, Violation
from harness.sim import SimRun
from harness.sim.duplicates import UNEXPLAINED, by_cause, duplicate_sends
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
    _check_one_call_at_a_time(run, out)
    _check_duplicates_explained(run, out)
    return out


def _check_duplicates_explained(run: SimRun, out: Findings) -> None:
    """A delivery is sent again after its workflow ran only for a reason physics forces."""
    sends = duplicate_sends(run.records)
    for d in sends:
        out.checked += 1
        if d.cause == UNEXPLAINED:
            out.fail(
                Violation(
                    f"delivery {d.key} sent again by instance {d.instance} (call #{d.seq}) after "
                    f"call #{d.earlier} of instance {d.earlier_instance} ran it and was answered "
                    "2xx, with no crash, lost lease or timeout to explain it",
                    d.tenant,
                    None,
                    d.key,
                    {"first": d.earlier_t, "second": d.t},
                    (d.key,),
                )
            )
    if sends:
        causes = by_cause(sends).items()
        out.notes.append("duplicate sends: " + ", ".join(f"{n} {c}" for c, n in causes))


def _check_one_call_at_a_time(run: SimRun, out: Findings) -> None:
    """Calls at n8n with one idempotency key never overlap (a call cut off by a crash ends at
    the crash, as in the quotas checker)."""
    r = run.records
    crash_times = sorted(at for at, _, _ in r.crashes)
    calls: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for e in r.journal:
        if e.idempotency_key is None:
            continue
        end = e.finished_t
        if end is None:
            cut = [c for c in crash_times if c >= e.t]
            end = cut[0] if cut else r.end
        calls[e.idempotency_key].append((e.t, end, e.seq))
    for key, spans in calls.items():
        if len(spans) < 2:
            continue
        out.checked += 1
        spans.sort()
        start, end, seq = spans[0]
        for later, later_end, later_seq in spans[1:]:
            if later < end - EPS:
                out.fail(
                    Violation(
                        f"delivery {key} in flight twice at n8n: call #{later_seq} at "
                        f"t={later:.3f} while call #{seq} (from t={start:.3f}) ran until "
                        f"t={end:.3f}",
                        None,
                        None,
                        key,
                        {"first": start, "second": later},
                        (key,),
                    )
                )
                break
            if later_end > end:
                start, end, seq = later, later_end, later_seq
