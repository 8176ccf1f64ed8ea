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
        self._rng = random.Random(self.seed)

    # --- events ----------------------------------------------------------------------------

    def secret_for(self, tenant: str) -> str:
        """The tenant's endpoint secret (made up, seeded, on first use)."""
        if tenant not in self.secrets:
            self.secrets[tenant] = "whsec_" + self._token(32)
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
        when = created if created is not None else self._now()
        customer = customer or "cus_" + self._token(14)
        subscription = subscription or "sub_" + self._token(24)
        obj, previous = self._object(type, when, customer, subscription, tenant)
        if data_object is not None:
            obj.update(data_object)
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        automatic = type in ("customer.subscription.deleted", "invoice.payment_failed")
        return {
            "id": "evt_" + self._token(24),
            "object": "event",
            "api_version": self.api_version,
            "created": when,
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": {
                "id": None if automatic else "req_" + self._token(14),
                "idempotency_key": None
                if automatic
                else str(uuid.UUID(int=self._rng.getrandbits(128))),
            },
            "type": type,
        }

    def story(self, tenant: str = "", *, start: int | None = None) -> list[dict[str, Any]]:
        """One customer's life in order: checkout, paid, payment failed, past due, cancelled."""
        t0 = start if start is not None else self._now() - 3600
        customer = "cus_" + self._token(14)
        subscription = "sub_" + self._token(24)
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
        t = self._now() if timestamp is None else timestamp
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
        got: list[DeliveryAnswer] = []
        async with self._client(client) as http:

            async def deliver(event: Mapping[str, Any], kind: str, expect: str) -> None:
                got.extend(
                    await self.deliver(
                        event, url, tenant=tenant, client=http, schedule=schedule,
                        kind=kind, expect=expect,
                    )
                )  # fmt: skip

            async def once(req: SignedRequest) -> None:
                got.append(await self.send(req, url, client=http))

            if scenario == "out-of-order":
                events: list[dict[str, Any]] = []
                while len(events) < count:
                    events.extend(self.story(tenant))
                events = events[:count]
                self._rng.shuffle(events)
                for event in events:
                    await deliver(event, "out-of-order", "process")
                return got
            if scenario == "burst":
                event = self.event(self._rng.choice(EVENT_TYPES), tenant=tenant)
                reqs = [
                    self.signed(event, tenant=tenant, kind="burst", expect="once")
                    for _ in range(count)
                ]
                answers = await asyncio.gather(*(self.send(r, url, client=http) for r in reqs))
                got.extend(answers)
                return got
            for _ in range(count):
                kind_of_event = self._rng.choice(EVENT_TYPES)
                if scenario == "resigned":
                    old = self._now() - int(self.resign_age)
                    event = self.event(kind_of_event, tenant=tenant, created=old)
                else:
                    event = self.event(kind_of_event, tenant=tenant)
                if scenario == "duplicates":
                    await deliver(event, "delivery", "process")
                    await deliver(event, "duplicate", "dedupe")
                elif scenario == "replay":
                    await deliver(event, "delivery", "process")
                    stale = self._now() - int(self.replay_age)
                    await once(self.signed(event, tenant=tenant, timestamp=stale, kind="replay",
                                           expect="reject"))  # fmt: skip
                elif scenario == "resigned":
                    await deliver(event, "delivery", "process")
                    await deliver(event, "resigned", "dedupe")
                elif scenario == "bad-signature":
                    kind = self._rng.choice(BAD_SIGNATURE_KINDS)
                    await once(self.bad_signature(event, tenant=tenant, kind=kind))
                elif scenario == "wrong-secret":
                    wrong = "whsec_" + self._token(32)
                    await once(self.signed(event, tenant=tenant, secrets=[wrong],
                                           kind="wrong-secret", expect="reject"))  # fmt: skip
                else:  # truncated: signed over the cut body, so only parsing can catch it
                    full = self.body(event)
                    cut = full[: self._rng.randrange(1, len(full) - 1)]
                    await once(self.signed(event, tenant=tenant, body=cut, kind="truncated",
                                           expect="reject"))  # fmt: skip
        return got

    # --- helpers ---------------------------------------------------------------------------

    def _client(self, client: httpx.AsyncClient | None) -> _ClientScope:
        return _ClientScope(client, self.transport)

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _token(self, n: int) -> str:
        return "".join(self._rng.choice(_ALPHABET) for _ in range(n))

    def _object(
        self, type_: str, when: int, customer: str, subscription: str, tenant: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        metadata = {"tenant_id": tenant} if tenant else {}
        amount = self._rng.choice((1900, 4900, 9900, 19900))
        if type_ == "checkout.session.completed":
            return {
                "id": ("cs_live_" if self.livemode else "cs_test_") + self._token(58),
                "object": "checkout.session",
                "amount_subtotal": amount,
                "amount_total": amount,
                "client_reference_id": tenant or None,
                "created": when,
                "currency": "usd",
                "customer": customer,
                "customer_details": {"email": f"billing+{self._token(6).lower()}@example.com"},
                "expires_at": when + 86_400,
                "livemode": self.livemode,
                "metadata": metadata,
                "mode": "subscription",
                "payment_status": "paid",
                "status": "complete",
                "subscription": subscription,
            }, None  # fmt: skip
        if type_ in ("invoice.paid", "invoice.payment_failed"):
            paid = type_ == "invoice.paid"
            return {
                "id": "in_" + self._token(24),
                "object": "invoice",
                "amount_due": amount,
                "amount_paid": amount if paid else 0,
                "amount_remaining": 0 if paid else amount,
                "attempt_count": 1 if paid else self._rng.randint(1, 4),
                "attempted": True,
                "billing_reason": "subscription_cycle",
                "created": when,
                "currency": "usd",
                "customer": customer,
                "livemode": self.livemode,
                "metadata": metadata,
                "next_payment_attempt": None if paid else when + 3 * 86_400,
                "paid": paid,
                "period_end": when,
                "period_start": when - 30 * 86_400,
                "status": "paid" if paid else "open",
                "subscription": subscription,
            }, None
        deleted = type_ == "customer.subscription.deleted"
        obj = {
            "id": subscription,
            "object": "subscription",
            "cancel_at_period_end": False,
            "canceled_at": when if deleted else None,
            "created": when - 60 * 86_400,
            "currency": "usd",
            "current_period_end": when + 30 * 86_400,
            "current_period_start": when,
            "customer": customer,
            "ended_at": when if deleted else None,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": "si_" + self._token(14),
                        "object": "subscription_item",
                        "price": {
                            "id": "price_" + self._token(24),
                            "object": "price",
                            "currency": "usd",
                            "recurring": {"interval": "month", "interval_count": 1},
                            "unit_amount": amount,
                        },
                        "quantity": 1,
                    }
                ],
            },
            "livemode": self.livemode,
            "metadata": metadata,
            "status": "canceled" if deleted else "past_due",
        }
        return obj, None if deleted else {"status": "active"}


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
