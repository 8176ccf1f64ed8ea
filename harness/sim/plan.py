"""The traffic plan: every Stripe event and every request of it, decided up front from the seed.

Arrival times (uniform, Poisson or diurnal, plus bursts), each event's tenant (by group weight)
and type (by the mix), and each event's delivery faults (late, duplicated, replayed, re-signed,
forged, burst). Bodies are the fake Stripe's, rendered once per tenant and type.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NamedTuple

from harness.fakes.stripe import FakeStripe, sign
from harness.sim.scenario import Scenario
from harness.sim.seeds import derive_rng, token

__all__ = ["BAD_KINDS", "Bodies", "EventSpec", "Planned", "forge", "plan_traffic"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
BAD_KINDS: Final = ("tampered", "no-v1", "unparsable", "missing")
_ID_SENTINEL: Final = "evt_\u2400sentinel\u2400"
_CREATED_SENTINEL: Final = -7_316_204_593
_ID_MARK: Final = json.dumps(_ID_SENTINEL)
_CREATED_MARK: Final = str(_CREATED_SENTINEL)


class Planned(NamedTuple):
    """One send, ordered by `(t, seq)` on the heap: `seq` is unique, so ties go no further."""

    t: float
    seq: int
    tenant: str
    event: int
    kind: str
    attempt: int = 0
    stamp: int | None = None
    """The signature's `t` for a replayed captured request (else: signed at send time)."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One Stripe event of the run."""

    tenant: str
    type: str
    created: int
    id: str


class _Plan:
    """Collects the sends; each gets the next sequence number."""

    def __init__(self) -> None:
        self.sends: list[Planned] = []

    def add(self, t: float, tenant: str, event: int, kind: str, stamp: int | None = None) -> None:
        self.sends.append(Planned(t, len(self.sends) + 1, tenant, event, kind, 0, stamp))


def plan_traffic(
    scenario: Scenario, seed: int, start: datetime
) -> tuple[list[Planned], list[EventSpec]]:
    """The run's sends as a heap, and its events by index."""
    tr = scenario.traffic
    rng = derive_rng(seed, "traffic")
    times = _arrivals(tr.shape, tr.events, tr.start, tr.duration, rng)
    for b in tr.bursts:
        times.extend(b.at + rng.random() * b.spread for _ in range(b.events))
    times.sort()
    tenant_cum = _cumulative(scenario.weights)
    mix_cum = _cumulative([w for _, w in tr.mix])
    types = [name for name, _ in tr.mix]
    start_unix = int((start - EPOCH).total_seconds())
    id_rng = derive_rng(seed, "event-ids")
    frng = derive_rng(seed, "stripe-faults")
    specs: list[EventSpec] = []
    plan = _Plan()
    for index, t in enumerate(times):
        tenant = scenario.tenants[_pick(tenant_cum, rng.random())]
        etype = types[_pick(mix_cum, rng.random())]
        specs.append(EventSpec(tenant, etype, start_unix + int(t), "evt_" + token(id_rng, 24)))
        _faults(scenario, frng, plan, t, tenant, index, start_unix)
    heapq.heapify(plan.sends)
    return plan.sends, specs


def _faults(
    scenario: Scenario,
    frng: random.Random,
    plan: _Plan,
    t: float,
    tenant: str,
    index: int,
    start_unix: int,
) -> None:
    """The event's own delivery and whatever the scenario's Stripe faults add to it."""
    faults = scenario.stripe
    send_t = t
    if faults.out_of_order and frng.random() < faults.out_of_order:
        send_t = t + frng.uniform(*faults.out_of_order_delay)
    plan.add(send_t, tenant, index, "delivery")
    if faults.duplicates and frng.random() < faults.duplicates:
        plan.add(send_t + frng.uniform(*faults.duplicate_delay), tenant, index, "duplicate")
    if faults.replays and frng.random() < faults.replays:
        later = send_t + frng.uniform(*faults.replay_delay)
        plan.add(later, tenant, index, "replay", start_unix + int(send_t))
    if faults.resigned_old and frng.random() < faults.resigned_old:
        plan.add(send_t + frng.uniform(*faults.resigned_delay), tenant, index, "resigned")
    if faults.bad_signatures and frng.random() < faults.bad_signatures:
        bad = BAD_KINDS[frng.randrange(len(BAD_KINDS))]
        plan.add(send_t + frng.random(), tenant, index, f"bad:{bad}")
    if faults.concurrent_duplicates and frng.random() < faults.concurrent_duplicates:
        at = send_t + frng.uniform(0.0, 5.0)
        for _ in range(faults.burst_copies):
            plan.add(at, tenant, index, "burst")


class Bodies:
    """Event bodies as the fake Stripe builds them: one realistic template per tenant and type
    (customer, subscription, invoice), stamped with each event's id and creation time."""

    def __init__(self, stripe: FakeStripe) -> None:
        self._stripe = stripe
        self._templates: dict[tuple[str, str], str] = {}

    def of(self, spec: EventSpec) -> bytes:
        key = (spec.tenant, spec.type)
        rendered = self._templates.get(key)
        if rendered is None:
            # Render the pretty-printed body once with sentinels in the two fields that change,
            # then substitute: the same bytes as rendering each event, at a fraction of the cost.
            template = self._stripe.event(spec.type, tenant=spec.tenant, created=spec.created)
            marked = {**template, "id": _ID_SENTINEL, "created": _CREATED_SENTINEL}
            rendered = self._stripe.body(marked).decode()
            self._templates[key] = rendered
        body = rendered.replace(_ID_MARK, json.dumps(spec.id), 1)
        return body.replace(_CREATED_MARK, str(spec.created), 1).encode()


def forge(kind: str, secret: str, stamp: int, body: bytes) -> str | None:
    """A `Stripe-Signature` header that is bad in the way `kind` (one of `BAD_KINDS`) says."""
    good = sign(body, secret, stamp)
    sig = good.split("v1=", 1)[1]
    if kind == "tampered":
        return f"t={stamp},v1={format(int(sig[0], 16) ^ 1, 'x')}{sig[1:]}"
    if kind == "no-v1":
        return f"t={stamp},v0={sig}"
    if kind == "unparsable":
        return f"v1={sig}"
    return None


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(cumulative: list[float], u: float) -> int:
    return min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)


def _arrivals(shape: str, n: int, start: float, duration: float, rng: random.Random) -> list[float]:
    if n == 0:
        return []
    if shape == "poisson":
        gaps = [rng.expovariate(1.0) for _ in range(n)]
        total = sum(gaps) + rng.expovariate(1.0)
        out, acc = [], 0.0
        for g in gaps:
            acc += g
            out.append(start + duration * acc / total)
        return out
    if shape == "diurnal":
        out = []
        for _ in range(100 * n):
            if len(out) == n:
                break
            x = rng.random()
            if rng.random() * 1.8 < 1.0 - 0.8 * math.cos(2 * math.pi * x):
                out.append(start + x * duration)
        return out
    return [start + rng.random() * duration for _ in range(n)]
