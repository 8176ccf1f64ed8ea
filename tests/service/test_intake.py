"""The intake on real Postgres: accepted, duplicate, every refusal with its code, 413."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from service_support import SECRETS, make_settings, stripe_header
from service_support import event_body as event

from harness.testing.postgres import PgDatabase
from reliability.clock import SystemClock
from reliability.intake import Intake, IntakeCode
from reliability.routing import idempotency_key
from reliability.signature import signature_header
from reliability.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(pg_database: PgDatabase) -> AsyncIterator[PostgresStore]:
    s = pg_database.open_store(max_size=2)
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def intake(store: PostgresStore) -> Intake:
    return Intake(make_settings(), store, SystemClock())


async def test_new_event_writes_ledger_and_outbox(intake: Intake, store: PostgresStore) -> None:
    body = event("evt_new", "checkout.session.completed")
    result = await intake.handle("acme", stripe_header(body), body)
    assert (result.status, result.code) == (200, IntakeCode.ACCEPTED)
    assert json.loads(result.body) == {"ok": True, "duplicate": False, "deliveries": 1}
    assert len(result.outbox_ids) == 1
    assert await store.is_processed("acme", "evt_new")
    [row] = await store.outbox_rows()
    assert row.id == result.outbox_ids[0]
    assert row.workflow == "client-onboarding"
    assert row.idempotency_key == idempotency_key("acme", "evt_new", "client-onboarding")
    assert row.event_id == "evt_new"
    assert row.payload == {
        "tenant_id": "acme",
        "workflow": "client-onboarding",
        "idempotency_key": row.idempotency_key,
        "event_id": "evt_new",
        "event_type": "checkout.session.completed",
        "created": 1_700_000_000,
        "livemode": False,
        "object": {"id": "in_1", "object": "invoice", "amount_paid": 4200},
    }


async def test_routes_come_from_configuration(store: PostgresStore) -> None:
    settings = make_settings(n8n_routes={"invoice.paid": ("weekly-recap", "notify-gap-fill")})
    intake = Intake(settings, store, SystemClock())
    body = event("evt_two", previous=None)
    result = await intake.handle("acme", stripe_header(body), body)
    assert result.code == IntakeCode.ACCEPTED
    assert len(result.outbox_ids) == 2
    assert sorted(r.workflow for r in await store.outbox_rows()) == [
        "notify-gap-fill",
        "weekly-recap",
    ]
    unrouted = event("evt_unrouted", "charge.refunded")
    result = await intake.handle("acme", stripe_header(unrouted), unrouted)
    assert (result.code, result.outbox_ids) == (IntakeCode.ACCEPTED, ())
    assert await store.is_processed("acme", "evt_unrouted")


async def test_duplicate_is_200_and_writes_nothing(intake: Intake, store: PostgresStore) -> None:
    body = event("evt_dup")
    first = await intake.handle("acme", stripe_header(body), body)
    assert first.code == IntakeCode.ACCEPTED
    # Stripe's retry: same event, fresh signature (here under the other, rotated secret).
    again = await intake.handle("acme", stripe_header(body, SECRETS[1]), body)
    assert (again.status, again.body, again.code) == (
        200,
        b'{"ok":true,"duplicate":true}',
        IntakeCode.DUPLICATE,
    )
    assert again.outbox_ids == ()
    assert len(await store.outbox_rows()) == 1
    # Same event id, another tenant: a different event.
    other = await intake.handle("globex", stripe_header(body, "whsec_globex"), body)
    assert other.code == IntakeCode.ACCEPTED


def _refusal(result: Any) -> tuple[int, str]:
    decoded = json.loads(result.body)
    assert decoded["ok"] is False
    # The answer's code is the real reason, but for an unknown tenant (answered like a bad
    # signature; the real reason goes to logs and metrics).
    if result.code is not IntakeCode.UNKNOWN_TENANT:
        assert decoded["code"] == result.code.value
    assert isinstance(decoded["message"], str)
    assert "whsec" not in decoded["message"]
    return result.status, decoded["code"]


async def test_every_refusal_has_its_code(intake: Intake, store: PostgresStore) -> None:
    body = event("evt_bad")
    old = int(time.time()) - 301
    cases: list[tuple[str, str | None, bytes, tuple[int, str]]] = [
        ("acme", None, body, (400, "MALFORMED_HEADER")),
        ("acme", "t=abc,v1=00", body, (400, "MALFORMED_HEADER")),
        ("acme", stripe_header(body, "whsec_wrong"), body, (400, "BAD_SIGNATURE")),
        ("acme", stripe_header(body), body + b"\n", (400, "BAD_SIGNATURE")),
        ("acme", stripe_header(body, t=old), body, (400, "STALE_TIMESTAMP")),
        ("acme", stripe_header(body, t=int(time.time()) + 400), body, (400, "STALE_TIMESTAMP")),
        ("nobody", stripe_header(body), body, (400, "BAD_SIGNATURE")),
        ("nosecret", stripe_header(body), body, (400, "BAD_SIGNATURE")),
        ("nobody", None, body, (400, "MALFORMED_HEADER")),
    ]
    for not_json in (
        b"not json",
        b"[1,2]",
        b'{"id":"evt_x"}',
        b'{"id":7,"type":"a"}',
        b'{"id":"e","type":"t","data":{"object":1}}',
        b'{"id":"e","type":"t","created":NaN,"data":{"object":{}}}',
        b"[" * 5000 + b"]" * 5000,
    ):
        cases.append(("acme", stripe_header_bytes(not_json), not_json, (400, "INVALID_JSON")))
    big = event("evt_big", padding="x" * (64 * 1024))
    cases.append(("acme", stripe_header(big), big, (413, "PAYLOAD_TOO_LARGE")))
    for tenant, header, payload, expected in cases:
        result = await intake.handle(tenant, header, payload)
        assert _refusal(result) == expected, (tenant, header, payload[:40])
        assert result.outbox_ids == ()
    assert await store.outbox_rows() == []
    assert not await store.is_processed("acme", "evt_bad")


def stripe_header_bytes(body: bytes) -> str:
    from reliability.signature import compute_signature

    t = int(time.time())
    return f"t={t},v1={compute_signature(SECRETS[0], t, body)}"


async def test_signature_header_from_our_signer_too(intake: Intake) -> None:
    body = event("evt_ours")
    header = signature_header(body, ("whsec_rotated_out", SECRETS[1]), int(time.time()))
    assert (await intake.handle("acme", header, body)).code == IntakeCode.ACCEPTED


async def test_store_down_is_503_and_stripe_retries(pg_database: PgDatabase) -> None:
    store = pg_database.open_store(max_size=1)
    await store.migrate()
    await store.close()
    intake = Intake(make_settings(), store, SystemClock())
    body = event("evt_down")
    result = await intake.handle("acme", stripe_header(body), body)
    assert _refusal(result) == (503, "STORE_UNAVAILABLE")


async def test_a_body_is_read_as_stripe_python_reads_it(intake: Intake) -> None:
    # stripe-python verifies the body's UTF-8 text: a BOM is kept; bytes that are not UTF-8
    # (UTF-16 with its BOM) never verify. UTF-32-LE of ASCII text happens to be valid UTF-8.
    for encoding in ("utf-16",):
        body = json.dumps(json.loads(event("evt_enc_x"))).encode(encoding)
        result = await intake.handle("acme", stripe_header_bytes(body), body)
        assert _refusal(result) == (400, "BAD_SIGNATURE")
    for n, encoding in enumerate(("utf-8-sig", "utf-32-le")):
        body = json.dumps(json.loads(event(f"evt_enc{n}"))).encode(encoding)
        assert json.loads(body)["id"] == f"evt_enc{n}"
        result = await intake.handle("acme", stripe_header_bytes(body), body)
        assert (result.status, result.code, result.event_id) == (
            200,
            IntakeCode.ACCEPTED,
            f"evt_enc{n}",
        )


async def test_unknown_tenants_cannot_be_told_from_bad_signatures(
    intake: Intake, store: PostgresStore
) -> None:
    body = event("evt_probe")
    for header in (None, "t=1", stripe_header(body), stripe_header(body, "whsec_guess")):
        known = await intake.handle("acme", header if header else None, body + b" ")
        unknown = await intake.handle("nobody", header, body + b" ")
        assert (unknown.status, unknown.body) == (known.status, known.body)
        assert unknown.code is IntakeCode.UNKNOWN_TENANT  # the real reason, for logs and metrics
    assert await store.outbox_rows() == []


async def test_lone_surrogates_in_ids_are_invalid_json_and_store_nothing(
    intake: Intake, store: PostgresStore
) -> None:
    for doc in (
        b'{"id":"evt_\\ud800","type":"no.such.type","data":{"object":{}}}',
        b'{"id":"evt_\\udfff","type":"invoice.paid","data":{"object":{}}}',
        b'{"id":"evt_ok","type":"invoice.\\ud83d","data":{"object":{}}}',
    ):
        result = await intake.handle("acme", stripe_header_bytes(doc), doc)
        assert _refusal(result) == (400, "INVALID_JSON")
    assert await store.outbox_rows() == []
    assert not await store.is_processed("acme", "evt_ok")
