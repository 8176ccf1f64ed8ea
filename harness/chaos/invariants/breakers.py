"""breaker_thresholds: every recorded breaker call, replayed through the independent
`BreakerModel`, gets the same grant, refusal or probe, and every transition happens at the same
time: the N-th failure in the window opens, N-1 do not, aged-out failures do not count,
recovery lets exactly the configured probes through, tenants never affect each other."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from harness.chaos.breaker_model import BreakerModel, Grant
from harness.chaos.invariants._base import Findings, Violation
from harness.sim import BreakerOp, SimRun
from reliability.breaker import State
from reliability.events import BreakerChanged

__all__ = ["check_breaker_thresholds"]


_Key = tuple[int, str]
"""(dispatcher instance, tenant): one breaker."""
_Transition = tuple[State, State, float]


def check_breaker_thresholds(run: SimRun, params: Mapping[str, Any]) -> Findings:
    out = Findings()
    models = _replay(run, out)
    _compare_transitions(run, models, out)
    opens = sum(m.opens_at_threshold for m in models.values())
    probes = sum(m.probes_granted for m in models.values())
    expired = sum(m.expired for m in models.values())
    out.notes.append(
        f"{opens} opened at exactly the threshold, {expired} failures aged out of the window, "
        f"{probes} probes, {len({k[1] for k in models})} tenants modelled independently"
    )
    return out


def _replay(run: SimRun, out: Findings) -> dict[_Key, BreakerModel]:
    """Every recorded call through a model of its breaker; each grant must match the model's."""
    r = run.records
    models: dict[_Key, BreakerModel] = {}
    for op in r.breaker_ops:
        key = (op.instance, op.tenant)
        model = models.get(key)
        if model is None:
            p = r.settings.tenant(op.tenant).breaker
            model = models[key] = BreakerModel(p.threshold, p.window, p.recovery, p.probes)
        out.checked += 1
        if op.op in ("acquire", "refused"):
            grant = model.acquire(op.t)
            actual = op.op == "acquire"
            if (grant is not None) != actual or (grant is not None and grant.probe != op.probe):
                out.fail(_mismatch(op, model, grant))
        elif op.op == "record":
            model.record(op.t, Grant(op.probe, op.generation), failed=not op.success)
        elif op.op == "release":
            model.release(Grant(op.probe, op.generation))
    return models


def _mismatch(op: BreakerOp, model: BreakerModel, grant: Grant | None) -> Violation:
    want = ("probe" if grant.probe else "call") if grant is not None else "refusal"
    got = ("probe" if op.probe else "call") if op.op == "acquire" else "refusal"
    return Violation(
        f"breaker in {model.state} with {len(model.failures)} failures in the "
        f"window (threshold {model.threshold}) should give a {want}, gave a {got}",
        op.tenant,
        None,
        f"dispatcher-{op.instance}",
        {"at": op.t, "opened_at": model.opened_at},
        (op.tenant, "cb-"),
    )


def _compare_transitions(run: SimRun, models: Mapping[_Key, BreakerModel], out: Findings) -> None:
    """The transitions each breaker announced must be the model's, at the model's times."""
    r = run.records
    seen: dict[_Key, list[_Transition]] = defaultdict(list)
    for _, instance, ev in r.events:
        if isinstance(ev, BreakerChanged):
            seen[(instance, ev.tenant_id)].append((ev.old, ev.new, r.seconds(ev.at)))
    for key in sorted(set(models) | set(seen)):
        expected = models[key].transitions if key in models else []
        observed = seen.get(key, [])
        out.checked += 1
        for i in range(max(len(expected), len(observed))):
            w = expected[i] if i < len(expected) else None
            g = observed[i] if i < len(observed) else None
            if w is not None and g is not None and w[:2] == g[:2] and abs(w[2] - g[2]) <= 1e-5:
                continue
            if w is not None and g is None and w[1] is State.HALF_OPEN:
                continue  # nobody asked the breaker after its recovery time: no event yet
            times = {} if w is None else {"expected_at": w[2]}
            times |= {} if g is None else {"seen_at": g[2]}
            out.fail(
                Violation(
                    f"breaker transition #{i + 1}: expected {_fmt(w)}, saw {_fmt(g)}",
                    key[1],
                    None,
                    f"dispatcher-{key[0]}",
                    times,
                    (key[1], "breaker"),
                )
            )
            break


def _fmt(tr: _Transition | None) -> str:
    return "nothing" if tr is None else f"{tr[0]}->{tr[1]} at t={tr[2]:.6f}"
