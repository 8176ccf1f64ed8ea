"""A fake Stripe: realistic events, signed like Stripe, delivered with retries and with faults.

Signatures are Stripe's: `Stripe-Signature: t=<unix>,v1=<hex>` (HMAC-SHA256 of `"<t>.<body>"`
with the endpoint secret), one `v1` per active secret during rotation, and a `v0=` entry on
test-mode events that verifiers ignore. `sign()` gives exactly what
`stripe.WebhookSignature.generate_signature_header` gives for the same inputs.

Delivery faults (`SCENARIOS`): duplicates, out-of-order, a captured request replayed with its
stale `t`, an old event re-signed with a fresh `t`, bad signatures (each kind its own verifier
error), the wrong secret, a truncated body, and a burst of concurrent duplicates. Every answer
is recorded with what a correct endpoint should have done (`expect`). Seeded: the same seed
gives the same events, bodies and fault choices.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from harness.fakes.stripe_objects import Draw, object_for
from reliability.clock import Clock, SystemClock

__all__ = [
    "API_VERSION",
    "BAD_SIGNATURE_KINDS",
    "EVENT_TYPES",
    "LIVE_SCHEDULE",
    "SCENARIOS",
    "TEST_SCHEDULE",
    "DeliveryAnswer",
    "FakeStripe",
    "SignedRequest",
    "sign",
    "signature_header",
]

API_VERSION: Final = "2024-06-20"
EVENT_TYPES: Final = (
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
SCENARIOS: Final = (
    "duplicates",
    "out-of-order",
    "replay",
    "resigned",
    "bad-signature",
    "wrong-secret",
    "truncated",
    "burst",
)
BAD_SIGNATURE_KINDS: Final = ("tampered", "no-v1", "unparsable", "missing")
"""Each fails `stripe.Webhook.construct_event` with its own message: no match, no v1 scheme,
header not parsable, no header at all."""

TEST_SCHEDULE: Final = (60.0, 600.0, 3600.0, 10800.0)
"""Retry delays (seconds) after a failed attempt: a few times over a few hours, as in test mode."""
LIVE_SCHEDULE: Final = (
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    43200.0,
    43200.0,
    43200.0,
    43200.0,
    28800.0,
)
"""Exponential backoff capped at 12 h, about 3 days in all, as in live mode (Stripe publishes
no exact intervals: pass your own schedule)."""

_USER_AGENT: Final = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
_ALPHABET: Final = string.ascii_letters + string.digits


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """`t=<timestamp>,v1=<hex>` for `payload`: Stripe's scheme, byte for byte."""
    return f"t={timestamp},v1={_hmac(secret, timestamp, payload)}"


def signature_header(
    payload: bytes, secrets: Sequence[str], timestamp: int, *, livemode: bool = False
) -> str:
    """The full header: one `v1` per secret (rotation), plus `v0` on test-mode events."""
    if not secrets:
        raise ValueError("signature_header needs at least one secret")
    parts = [f"t={timestamp}"] + [f"v1={_hmac(s, timestamp, payload)}" for s in secrets]
    if not livemode:
        # Stripe's v0 is a legacy test-mode scheme verifiers must ignore: any other HMAC will do.
        parts.append(f"v0={_hmac('v0:' + secrets[0], timestamp, payload)}")
    return ",".join(parts)


def _hmac(secret: str, timestamp: int, payload: bytes) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.digest(secret.encode("utf-8"), signed, "sha256").hex()  # one-shot, in C


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One webhook POST as Stripe would send it (or as a fault makes it)."""

    event_id: str
    tenant: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    timestamp: int
    kind: str
    """What this request is: `delivery`, `duplicate`, `replay`, `bad-signature:tampered`, ..."""
    expect: str
    """What a correct endpoint does: `process`, `dedupe` (2xx, no second effect) or `reject`."""


@dataclass(frozen=True, slots=True)
class DeliveryAnswer:
    """What the endpoint answered to one attempt (or the transport error instead)."""

    event_id: str
    tenant: str
    kind: str
    expect: str
    attempt: int
    url: str
    timestamp: int
    sent_at: float
    status: int | None
    body: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "tenant": self.tenant,
            "kind": self.kind,
            "expect": self.expect,
            "attempt": self.attempt,
            "url": self.url,
            "timestamp": self.timestamp,
            "status": self.status,
            "body": self.body.decode("utf-8", "replace"),
            "error": self.error,
        }


@dataclass
class FakeStripe:
    """Builds, signs and delivers Stripe events; seeded, on an injected clock."""

    clock: Clock = field(default_factory=SystemClock)
    seed: int = 0
    secrets: dict[str, str] = field(default_factory=dict)
    """Tenant -> endpoint secret; a tenant without one gets a seeded `whsec_...`."""
    livemode: bool = False
    api_version: str = API_VERSION
    schedule: Sequence[float] = TEST_SCHEDULE
    timeout: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None
    """Send through this httpx transport (e.g. `httpx.ASGITransport(app)`) instead of TCP."""
    replay_age: float = 600.0
    """How old (seconds) the `t` of a replayed captured request is; above the 300 s tolerance."""
    resign_age: float = 4 * 86_400.0
    """How old (seconds) an event re-signed with a fresh `t` is; beyond Stripe's 3-day retries."""
    answers: list[DeliveryAnswer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        """The one random source of this fake: every made-up id and fault choice comes from it."""

    # --- events ----------------------------------------------------------------------------

    def secret_for(self, tenant: str) -> str:
        """The tenant's endpoint secret (made up, seeded, on first use)."""
        if tenant not in self.secrets:
            self.secrets[tenant] = "whsec_" + self.token(32)
        return self.secrets[tenant]

    def event(
        self,
        type: str,
        *,
        tenant: str = "",
        created: int | None = None,
        customer: str | None = None,
        subscription: str | None = None,
        data_object: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A realistic event of `type` (one of `EVENT_TYPES`) for `tenant`."""
        if type not in EVENT_TYPES:
            raise ValueError(f"event type {type!r} is not one of {', '.join(EVENT_TYPES)}")
        when = created if created is not None else self.now()
        customer = customer or "cus_" + self.token(14)
        subscription = subscription or "sub_" + self.token(24)
        amount = self.rng.choice((1900, 4900, 9900, 19900))
        draw = Draw(
            self.rng, self.token, when, customer, subscription, tenant, self.livemode, amount
        )
        obj, previous = object_for(type, draw)
        if data_object is not None:
            obj.update(data_object)
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        automatic = type in ("customer.subscription.deleted", "invoice.payment_failed")
        return {
            "id": "evt_" + self.token(24),
            "object": "event",
            "api_version": self.api_version,
            "created": when,
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": {
                "id": None if automatic else "req_" + self.token(14),
                "idempotency_key": None
                if automatic
                else str(uuid.UUID(int=self.rng.getrandbits(128))),
            },
            "type": type,
        }

    def story(self, tenant: str = "", *, start: int | None = None) -> list[dict[str, Any]]:
        """One customer's life in order: checkout, paid, payment failed, past due, cancelled."""
        t0 = start if start is not None else self.now() - 3600
        customer = "cus_" + self.token(14)
        subscription = "sub_" + self.token(24)
        return [
            self.event(kind, tenant=tenant, created=t0 + 60 * i, customer=customer,
                       subscription=subscription)
            for i, kind in enumerate(EVENT_TYPES)
        ]  # fmt: skip

    def body(self, event: Mapping[str, Any]) -> bytes:
        """The JSON body as Stripe sends it (pretty-printed, two-space indent)."""
        return json.dumps(event, indent=2).encode()

    # --- signing ---------------------------------------------------------------------------

    def signed(
        self,
        event: Mapping[str, Any],
        *,
        tenant: str = "",
        timestamp: int | None = None,
        secrets: Sequence[str] | None = None,
        kind: str = "delivery",
        expect: str = "process",
        body: bytes | None = None,
    ) -> SignedRequest:
        """A correctly signed request for `event` (at `timestamp`, default now on the clock)."""
        payload = self.body(event) if body is None else body
        t = self.now() if timestamp is None else timestamp
        keys = list(secrets) if secrets is not None else [self.secret_for(tenant)]
        header = signature_header(payload, keys, t, livemode=bool(event.get("livemode", False)))
        return SignedRequest(
            str(event["id"]), tenant, payload, self._headers(header), t, kind, expect
        )

    def bad_signature(self, event: Mapping[str, Any], *, tenant: str, kind: str) -> SignedRequest:
        """A request whose signature is bad in the way `kind` (see `BAD_SIGNATURE_KINDS`) says."""
        good = self.signed(event, tenant=tenant)
        t = good.timestamp
        sig = _hmac(self.secret_for(tenant), t, good.body)
        if kind == "tampered":
            flipped = format(int(sig[0], 16) ^ 0x1, "x") + sig[1:]
            header: str | None = f"t={t},v1={flipped}"
        elif kind == "no-v1":
            header = f"t={t},v0={sig}"
        elif kind == "unparsable":
            header = f"v1={sig}"
        elif kind == "missing":
            header = None
        else:
            raise ValueError(f"bad signature kind {kind!r} is not one of {BAD_SIGNATURE_KINDS}")
        headers = self._headers(header)
        return SignedRequest(
            good.event_id, tenant, good.body, headers, t, f"bad-signature:{kind}", "reject"
        )

    def _headers(self, signature: str | None) -> tuple[tuple[str, str], ...]:
        base = (
            ("Content-Type", "application/json; charset=utf-8"),
            ("User-Agent", _USER_AGENT),
            ("Accept", "*/*; q=0.5, application/xml"),
            ("Cache-Control", "no-cache"),
        )
        return base if signature is None else (*base, ("Stripe-Signature", signature))

    # --- delivery --------------------------------------------------------------------------

    async def send(
        self, request: SignedRequest, url: str, *, client: httpx.AsyncClient, attempt: int = 0
    ) -> DeliveryAnswer:
        """POST one request once and record the answer (or the transport error)."""
        target = url.replace("{tenant}", request.tenant)
        sent_at = self.clock.monotonic()
        try:
            response = await client.post(
                target, content=request.body, headers=list(request.headers), timeout=self.timeout
            )
            answer = DeliveryAnswer(
                request.event_id, request.tenant, request.kind, request.expect, attempt, target,
                request.timestamp, sent_at, response.status_code, response.content,
            )  # fmt: skip
        except httpx.TransportError as exc:
            answer = DeliveryAnswer(
                request.event_id, request.tenant, request.kind, request.expect, attempt, target,
                request.timestamp, sent_at, None, b"", f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
        self.answers.append(answer)
        return answer

    async def deliver(
        self,
        event: Mapping[str, Any],
        url: str,
        *,
        tenant: str = "",
        client: httpx.AsyncClient | None = None,
        schedule: Sequence[float] | None = None,
        kind: str = "delivery",
        expect: str = "process",
    ) -> list[DeliveryAnswer]:
        """Deliver until a 2xx: each retry waits the schedule's next delay on the clock and is
        signed anew (fresh `t`), as Stripe does. Returns every answer."""
        delays = list(self.schedule if schedule is None else schedule)
        got: list[DeliveryAnswer] = []
        async with self._client(client) as http:
            for attempt in range(len(delays) + 1):
                if attempt:
                    await self.clock.sleep(delays[attempt - 1])
                req = self.signed(event, tenant=tenant, kind=kind, expect=expect)
                answer = await self.send(req, url, client=http, attempt=attempt)
                got.append(answer)
                if answer.ok:
                    break
        return got

    async def run_scenario(
        self,
        scenario: str,
        url: str,
        *,
        tenant: str = "",
        count: int = 1,
        client: httpx.AsyncClient | None = None,
        schedule: Sequence[float] | None = None,
    ) -> list[DeliveryAnswer]:
        """Play one of `SCENARIOS` with `count` events (a burst: `count` concurrent copies)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        async with self._client(client) as http:
            play = Play(self, url, tenant=tenant, client=http, schedule=schedule)
            await play.run(scenario, count)
        return play.answers

    # --- helpers ---------------------------------------------------------------------------

    def _client(self, client: httpx.AsyncClient | None) -> _ClientScope:
        return _ClientScope(client, self.transport)

    def now(self) -> int:
        """The clock's wall time in unix seconds, as Stripe stamps events and signatures."""
        return int(self.clock.now().timestamp())

    def token(self, n: int) -> str:
        """`n` random letters and digits, as in Stripe's ids."""
        return "".join(self.rng.choice(_ALPHABET) for _ in range(n))


class _ClientScope:
    """Use the caller's client as is, or open (and close) one of our own."""

    def __init__(
        self, client: httpx.AsyncClient | None, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self._given = client
        self._transport = transport
        self._own: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        self._own = httpx.AsyncClient(transport=self._transport)
        return self._own

    async def __aexit__(self, *exc: object) -> None:
        if self._own is not None:
            await self._own.aclose()


class Play:
    """One run of a delivery-fault scenario (`SCENARIOS`) against one endpoint."""

    def __init__(
        self,
        stripe: FakeStripe,
        url: str,
        *,
        tenant: str,
        client: httpx.AsyncClient,
        schedule: Sequence[float] | None,
    ) -> None:
        self.stripe = stripe
        self.url = url
        self.tenant = tenant
        self.client = client
        self.schedule = schedule
        self.answers: list[DeliveryAnswer] = []

    async def run(self, scenario: str, count: int) -> None:
        if scenario == "out-of-order":
            await self._out_of_order(count)
        elif scenario == "burst":
            await self._burst(count)
        else:
            for _ in range(count):
                await self._one(scenario)

    async def _deliver(self, event: Mapping[str, Any], kind: str, expect: str) -> None:
        self.answers += await self.stripe.deliver(
            event, self.url, tenant=self.tenant, client=self.client, schedule=self.schedule,
            kind=kind, expect=expect,
        )  # fmt: skip

    async def _once(self, request: SignedRequest) -> None:
        self.answers.append(await self.stripe.send(request, self.url, client=self.client))

    async def _out_of_order(self, count: int) -> None:
        events: list[dict[str, Any]] = []
        while len(events) < count:
            events.extend(self.stripe.story(self.tenant))
        events = events[:count]
        self.stripe.rng.shuffle(events)
        for event in events:
            await self._deliver(event, "out-of-order", "process")

    async def _burst(self, count: int) -> None:
        s, tenant = self.stripe, self.tenant
        event = s.event(s.rng.choice(EVENT_TYPES), tenant=tenant)
        requests = [
            s.signed(event, tenant=tenant, kind="burst", expect="once") for _ in range(count)
        ]
        self.answers += await asyncio.gather(
            *(s.send(r, self.url, client=self.client) for r in requests)
        )

    async def _one(self, scenario: str) -> None:
        s, tenant = self.stripe, self.tenant
        type_ = s.rng.choice(EVENT_TYPES)
        old = s.now() - int(s.resign_age) if scenario == "resigned" else None
        event = s.event(type_, tenant=tenant, created=old)
        if scenario in ("duplicates", "replay", "resigned"):
            await self._deliver(event, "delivery", "process")
        if scenario == "duplicates":
            await self._deliver(event, "duplicate", "dedupe")
        elif scenario == "replay":
            stale = s.now() - int(s.replay_age)
            await self._once(s.signed(event, tenant=tenant, timestamp=stale, kind="replay",
                                      expect="reject"))  # fmt: skip
        elif scenario == "resigned":
            await self._deliver(event, "resigned", "dedupe")
        elif scenario == "bad-signature":
            kind = s.rng.choice(BAD_SIGNATURE_KINDS)
            await self._once(s.bad_signature(event, tenant=tenant, kind=kind))
        elif scenario == "wrong-secret":
            wrong = "whsec_" + s.token(32)
            await self._once(s.signed(event, tenant=tenant, secrets=[wrong],
                                      kind="wrong-secret", expect="reject"))  # fmt: skip
        else:  # truncated: signed over the cut body, so only parsing can catch it
            full = s.body(event)
            cut = full[: s.rng.randrange(1, len(full) - 1)]
            await self._once(s.signed(event, tenant=tenant, body=cut, kind="truncated",
                                      expect="reject"))  # fmt: skip
