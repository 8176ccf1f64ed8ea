"""Stripe's side of the run: every planned request, signed and sent to the intake on time.

Each request goes straight to `Intake.handle(tenant, Stripe-Signature, body)` (no HTTP inside
the simulation). An accepted event's rows go to a task of the service process, as the app's
background task delivers them. A request the service did not answer (it was down) is sent again
on Stripe's retry schedule.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Final

from harness.fakes.stripe import FakeStripe, sign
from harness.sim.ledger_guard import SeedLedgerGuard
from harness.sim.plan import Bodies, EventSpec, Planned, forge
from harness.sim.process import Fleet, Sim
from harness.sim.records import Send
from reliability.intake import IntakeCode
from reliability.signature import SignatureError, verify

__all__ = ["Traffic"]

_RESENT: Final = frozenset({"delivery", "duplicate", "resigned", "retry", "burst"})
"""Requests the fake Stripe sends again when the service did not answer (not forgeries)."""


class Traffic:
    """Sends the plan, in time order, to a service process that is up (the balancer's pick)."""

    def __init__(
        self,
        sim: Sim,
        fleet: Fleet,
        stripe: FakeStripe,
        specs: list[EventSpec],
        guard: SeedLedgerGuard | None,
    ) -> None:
        self._sim = sim
        self._fleet = fleet
        self._bodies = Bodies(stripe)
        self._specs = specs
        self._guard = guard

    async def run(self, plan: list[Planned]) -> None:
        clock = self._sim.clock
        remaining: dict[int, int] = {}
        for p in plan:
            remaining[p.event] = remaining.get(p.event, 0) + 1
        bodies: dict[int, bytes] = {}
        schedule = self._sim.scenario.stripe.retry_schedule
        seq = len(plan) + 1
        while plan:
            item = heapq.heappop(plan)
            wait = item.t - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            group = [item]
            if item.kind == "burst":
                while plan and plan[0].t == item.t and plan[0].kind == "burst":
                    group.append(heapq.heappop(plan))
            body = bodies.get(item.event)
            if body is None:
                body = self._bodies.of(self._specs[item.event])
            answered = await self._send_all(group, body)
            left = remaining[item.event] - len(group)
            if not answered and item.kind in _RESENT and item.attempt < len(schedule):
                at = clock.monotonic() + schedule[item.attempt]
                retry = Planned(at, seq, item.tenant, item.event, "retry", item.attempt + 1)
                heapq.heappush(plan, retry)
                seq += 1
                left += 1
            if left > 0:
                remaining[item.event] = left
                bodies[item.event] = body
            else:
                remaining.pop(item.event, None)
                bodies.pop(item.event, None)

    async def _send_all(self, group: list[Planned], body: bytes) -> bool:
        """Send a request (or a burst of identical ones at once); whether all were answered."""
        spec = self._specs[group[0].event]
        if len(group) == 1:
            answers = [await self._send(group[0], spec, body)]
        else:
            answers = await asyncio.gather(*(self._send(g, spec, body) for g in group))
        return all(a is not None for a in answers)

    async def _send(self, item: Planned, spec: EventSpec, body: bytes) -> int | None:
        sim = self._sim
        secret = sim.settings.tenants[spec.tenant].stripe_webhook_secrets[0]
        stamp = item.stamp if item.stamp is not None else int(sim.clock.now().timestamp())
        if item.kind.startswith("bad:"):
            header = forge(item.kind[4:], secret, stamp, body)
        else:
            header = sign(body, secret, stamp)
        service = self._fleet.pick()
        if service is None:
            sim.records.sends.append(
                Send(sim.clock.monotonic(), spec.tenant, spec.id, item.kind, None, "DOWN")
            )
            sim.trace.add("stripe", f"{spec.tenant} {spec.id} {item.kind} DOWN")
            return None
        verdict = "" if self._guard is None else self._step06_verdict(spec, header, body)
        result = await service.intake.handle(spec.tenant, header, body)
        sim.records.sends.append(
            Send(
                sim.clock.monotonic(),
                spec.tenant,
                spec.id,
                item.kind,
                result.status,
                result.code.value,
                result.outbox_ids,
                verdict,
            )
        )
        sim.trace.add(
            "stripe",
            f"{spec.tenant} {spec.id} {item.kind} {result.status} {result.code.value} "
            f"outbox={','.join(result.outbox_ids)}{' seed=' + verdict if verdict else ''}",
        )
        dispatcher = service.live
        if result.code is IntakeCode.ACCEPTED and dispatcher is not None:
            if result.claimed:
                service.spawn(dispatcher.deliver_claimed(result.claimed))
            elif result.outbox_ids:
                service.spawn(dispatcher.deliver(result.outbox_ids))
        return result.status

    def _step06_verdict(self, spec: EventSpec, header: str | None, body: bytes) -> str:
        """What the Step 06 design's ledger-only guard would have done with this request."""
        assert self._guard is not None
        sim = self._sim
        secrets = sim.settings.tenants[spec.tenant].stripe_webhook_secrets
        try:
            verify(header, body, secrets, sim.clock)
        except SignatureError:
            return "rejected"
        admitted = self._guard.admit(spec.tenant, spec.id, spec.created)
        return "processed" if admitted else "skipped"
