"""The fake Stripe against the official `stripe` package, and its deliveries and faults."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest
import respx
import stripe
from hypothesis import given
from hypothesis import strategies as st
from respx.handlers import ASGIHandler

from harness import vclock
from harness.fakes.n8n import FakeN8n
from harness.fakes.stripe import (
    BAD_SIGNATURE_KINDS,
    EVENT_TYPES,
    SCENARIOS,
    FakeStripe,
    SignedRequest,
    sign,
    signature_header,
)
from harness.vclock import ManualClock, VirtualClock

SECRET = "whsec_test_secret"
Scope = MutableMapping[str, Any]


def header(req: SignedRequest) -> str | None:
    return dict(req.headers).get("Stripe-Signature")


def verify(req: SignedRequest, secret: str = SECRET, tolerance: int | None = 300) -> Any:
    return stripe.Webhook.construct_event(req.body, header(req), secret, tolerance)  # type: ignore[arg-type]


# --- signatures: ours == the package's, both ways -------------------------------------------


@given(
    body=st.text(min_size=0, max_size=200),
    secret=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1),
    timestamp=st.integers(0, 2**40),
)
def test_sign_equals_generate_signature_header(body: str, secret: str, timestamp: int) -> None:
    expected = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    assert sign(body.encode(), secret, timestamp) == expected


def test_construct_event_accepts_our_signed_events_with_v0_and_rotation() -> None:
    fake = FakeStripe(secrets={"t1": SECRET})
    for kind in EVENT_TYPES:
        req = fake.signed(fake.event(kind, tenant="t1"), tenant="t1")
        assert header(req) is not None
        assert ",v0=" in str(header(req))  # test mode
        event = verify(req)
        assert (event.id, event.type) == (req.event_id, kind)
    rotating = fake.signed(fake.event("invoice.paid"), secrets=["whsec_old", SECRET])
    assert str(header(rotating)).count("v1=") == 2
    assert verify(rotating).id == rotating.event_id
    assert verify(rotating, "whsec_old").id == rotating.event_id


def test_our_verifier_side_accepts_headers_the_package_makes() -> None:
    payload = json.dumps({"id": "evt_1", "object": "event"})
    made = stripe.WebhookSignature.generate_signature_header(payload, SECRET, 1_700_000_000)
    assert made == sign(payload.encode(), SECRET, 1_700_000_000)
    assert signature_header(payload.encode(), [SECRET], 1_700_000_000, livemode=True) == made


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("tampered", "No signatures found matching the expected signature for payload"),
        ("no-v1", "No signatures found with expected scheme v1"),
        ("unparsable", "Unable to extract timestamp and signatures from header"),
        ("missing", "No Stripe-Signature header value was provided"),
    ],
)
def test_each_bad_signature_fails_with_its_own_error(kind: str, message: str) -> None:
    fake = FakeStripe(secrets={"": SECRET})
    req = fake.bad_signature(fake.event("invoice.paid"), tenant="", kind=kind)
    with pytest.raises(stripe.SignatureVerificationError) as info:
        verify(req)
    assert str(info.value).startswith(message)
    assert (req.kind, req.expect) == (f"bad-signature:{kind}", "reject")
    assert set(BAD_SIGNATURE_KINDS) == {"tampered", "no-v1", "unparsable", "missing"}


def test_wrong_secret_replay_and_truncation_fail_as_stripe_says() -> None:
    fake = FakeStripe(secrets={"": SECRET})
    event = fake.event("checkout.session.completed")
    wrong = fake.signed(event, secrets=["whsec_other"])
    with pytest.raises(stripe.SignatureVerificationError, match="No signatures found matching"):
        verify(wrong)
    stale = fake.signed(event, timestamp=fake.now() - 600)
    with pytest.raises(stripe.SignatureVerificationError, match="Timestamp outside the tolerance"):
        verify(stale)
    cut = fake.body(event)[:40]
    truncated = fake.signed(event, body=cut)
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Invalid"):
        verify(truncated)
    future = fake.signed(event, timestamp=fake.now() + 3600)
    assert verify(future).id == event["id"]  # the package only bounds the past


# --- events -----------------------------------------------------------------------------------


def test_events_carry_the_documented_fields_and_are_seeded() -> None:
    a = FakeStripe(clock=ManualClock(), seed=1)
    b = FakeStripe(clock=ManualClock(), seed=1)
    story_a, story_b = a.story("acme"), b.story("acme")
    assert [a.body(e) for e in story_a] == [b.body(e) for e in story_b]
    assert [e["type"] for e in story_a] == list(EVENT_TYPES)
    for e in story_a:
        assert {"id", "object", "api_version", "created", "type", "data", "livemode",
                "pending_webhooks", "request"} <= set(e)  # fmt: skip
        assert e["id"].startswith("evt_")
        assert e["object"] == "event"
        assert set(e["request"]) == {"id", "idempotency_key"}
        assert e["data"]["object"]["metadata"] == {"tenant_id": "acme"}
    created = [e["created"] for e in story_a]
    assert created == sorted(created)
    updated = story_a[3]
    assert updated["data"]["previous_attributes"] == {"status": "active"}
    assert updated["data"]["object"]["status"] == "past_due"
    assert story_a[4]["data"]["object"]["status"] == "canceled"
    assert story_a[4]["request"]["id"] is None  # automatic: no API request behind it
    customers = {e["data"]["object"]["customer"] for e in story_a}
    assert len(customers) == 1
    assert FakeStripe(clock=ManualClock(), seed=2).story("acme") != story_a
    assert a.body(story_a[0]).startswith(b'{\n  "id": "evt_')


# --- delivery ---------------------------------------------------------------------------------


class Receiver:
    """A minimal correct endpoint: verify with the package, dedupe by event id, answer 2xx."""

    def __init__(self, secret: str = SECRET, *, tolerance: int | None = 300, fail: int = 0) -> None:
        self.secret, self.tolerance, self.fail = secret, tolerance, fail
        self.processed: Counter[str] = Counter()
        self.timestamps: list[str | None] = []
        self.created: list[int] = []

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.timestamps.append(headers.get("stripe-signature"))
        if self.fail > 0:
            self.fail -= 1
            status, text = 500, b"down"
        else:
            try:
                event = stripe.Webhook.construct_event(
                    body,
                    headers.get("stripe-signature"),
                    self.secret,
                    self.tolerance,  # type: ignore[arg-type]
                )
            except stripe.SignatureVerificationError:
                status, text = 400, b"bad signature"
            except ValueError:
                status, text = 400, b"invalid payload"
            else:
                if event.id in self.processed:
                    status, text = 200, b"duplicate"
                else:
                    self.processed[event.id] += 1
                    self.created.append(event.created)
                    status, text = 200, b"ok"
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": text})


@pytest.mark.virtual_clock(freeze=True)
async def test_deliver_retries_on_the_schedule_with_a_fresh_t_until_2xx(
    virtual_clock: VirtualClock,
) -> None:
    # The receiver checks the 300 s tolerance with the package, which reads time.time(): the
    # frozen wall follows virtual time, so an hour of retries passes only if each is re-signed.
    receiver = Receiver(fail=2)
    fake = FakeStripe(
        clock=virtual_clock, secrets={"": SECRET}, transport=httpx.ASGITransport(receiver)
    )
    event = fake.event("invoice.payment_failed")
    answers = await fake.deliver(event, "http://app/stripe", schedule=[60, 600, 3600])
    sent = [a.sent_at for a in answers]
    assert [(a.attempt, a.status) for a in answers] == [(0, 500), (1, 500), (2, 200)]
    assert [b - a for a, b in itertools.pairwise(sent)] == [60.0, 600.0]
    stamps = [a.timestamp for a in answers]
    assert stamps == sorted(set(stamps))  # each retry signed anew
    assert len(set(receiver.timestamps)) == 3
    assert answers[-1].body == b"ok"


@pytest.mark.virtual_clock(freeze=True)
async def test_signatures_expire_exactly_at_the_tolerance_on_virtual_time(
    virtual_clock: VirtualClock,
) -> None:
    fake = FakeStripe(clock=virtual_clock, secrets={"": SECRET})
    req = fake.signed(fake.event("invoice.paid"))
    await asyncio.sleep(300)
    assert verify(req).id  # 300 s old: the package's boundary, still inside
    await asyncio.sleep(1)
    with pytest.raises(stripe.SignatureVerificationError, match="Timestamp outside the tolerance"):
        verify(req)


@pytest.mark.virtual_clock(freeze=True)
async def test_deliveries_reach_an_app_routed_by_respx_beside_the_fake_n8n(
    virtual_clock: VirtualClock, fake_n8n_respx: FakeN8n, respx_mock: respx.MockRouter
) -> None:
    """The fake Stripe sends rather than answers, so it needs no route of its own: with
    respx on, its deliveries go through respx like any client's, here into an ASGI app
    (respx's `ASGIHandler`), retried on virtual time and checked against the frozen wall."""
    receiver = Receiver(fail=1)
    app = respx_mock.post("http://app.test/stripe").mock(side_effect=ASGIHandler(receiver))
    fake = FakeStripe(clock=virtual_clock, secrets={"": SECRET})  # its own client: intercepted
    event = fake.event("invoice.paid")
    answers = await fake.deliver(event, "http://app.test/stripe", schedule=[3600])
    assert [(a.status, a.body) for a in answers] == [(500, b"down"), (200, b"ok")]
    assert app.call_count == 2
    replay = fake.signed(event, timestamp=fake.now() - 301, kind="replay", expect="reject")
    async with httpx.AsyncClient() as http:
        refused = await fake.send(replay, "http://app.test/stripe", client=http)
        hook = await http.post(  # and the fake n8n, on the same router
            "http://fake-n8n.invalid/webhook/weekly-recap",
            json={"tenant_id": "acme"},
            headers={"X-N8N-Webhook-Key": "local-test-webhook-key"},
        )
    assert (refused.status, refused.body) == (400, b"bad signature")
    assert hook.status_code == 200
    assert fake_n8n_respx.journal.counts_by_tenant() == {"acme": 1}


def test_deliver_gives_up_after_the_schedule_and_records_transport_errors() -> None:
    async def main(clock: VirtualClock) -> list[Any]:
        fake = FakeStripe(clock=clock)  # nothing listens on port 9 of 127.0.0.1
        return await fake.deliver(
            fake.event("invoice.paid"), "http://127.0.0.1:9/x", schedule=[1, 2]
        )

    answers = vclock.run(main)
    assert [a.status for a in answers] == [None, None, None]
    assert all(a.error is not None and a.error.startswith("ConnectError") for a in answers)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_scenarios_against_a_correct_endpoint(scenario: str) -> None:
    receiver = Receiver()
    fake = FakeStripe(seed=11, secrets={"t": SECRET}, transport=httpx.ASGITransport(receiver))
    answers = await fake.run_scenario(scenario, "http://app/{tenant}/stripe", tenant="t", count=5)
    assert answers == fake.answers
    assert all(a.url == "http://app/t/stripe" for a in answers)
    for a in answers:
        if a.expect == "reject":
            assert a.status == 400, a
        else:
            assert a.status == 200, a
    assert all(n == 1 for n in receiver.processed.values())  # nothing processed twice
    two_requests_per_event = {"duplicates", "replay", "resigned"}
    expected_counts = {s: 10 if s in two_requests_per_event else 5 for s in SCENARIOS}
    assert len(answers) == expected_counts[scenario]
    if scenario == "burst":
        assert len({a.event_id for a in answers}) == 1
        assert sum(a.body == b"ok" for a in answers) == 1
    if scenario == "out-of-order":  # one customer's story, delivered shuffled
        assert len(receiver.created) == 5
        assert receiver.created != sorted(receiver.created)


async def test_a_naive_endpoint_is_caught_by_duplicates() -> None:
    processed: Counter[str] = Counter()

    async def naive(
        scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        body = (await receive())["body"]
        processed[json.loads(body)["id"]] += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fake = FakeStripe(seed=3, transport=httpx.ASGITransport(naive))
    await fake.run_scenario("duplicates", "http://app/", count=2)
    assert sorted(processed.values()) == [2, 2]


def test_bad_arguments_are_refused() -> None:
    fake = FakeStripe()
    with pytest.raises(ValueError, match=r"event type 'charge\.refunded'"):
        fake.event("charge.refunded")
    with pytest.raises(ValueError, match="bad signature kind"):
        fake.bad_signature(fake.event("invoice.paid"), tenant="", kind="odd")
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header(b"{}", [], 1)
