"""Row isolation on real Postgres: rows the dispatcher cannot handle end delivered or in the DLQ,
and no drain answers 500 because of them (issue 16, Deliver 1)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from service_support import (
    CRON,
    SECRETS,
    N8nStandIn,
    Service,
    event_body,
    make_settings,
    stripe_header,
)

from reliability.clock import LONGEST
from reliability.config import ConfigError, Settings, TenantConfig, load_settings
from reliability.errors import ErrorCode
from reliability.intake import Intake
from reliability.store.base import DlqFilter

pytestmark = pytest.mark.postgres


async def drain(svc: Service) -> dict[str, Any]:
    response = await svc.client.post(f"/api/cron/drain?secret={CRON}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def enqueue(svc: Service, *event_ids: str, tenant: str = "acme") -> None:
    """Intake without the immediate delivery: the rows wait for a drain."""
    intake = Intake(svc.app.state.service.settings, svc.store, svc.clock)
    for event_id in event_ids:
        body = event_body(event_id)
        secret = SECRETS[0] if tenant == "acme" else "whsec_cafe"
        signature = stripe_header(body, secret, t=int(svc.clock.now().timestamp()))
        result = await intake.handle(tenant, signature, body)
        assert result.outbox_ids, result


async def test_non_ascii_event_id_is_delivered_with_an_encoded_key(make_service: Any) -> None:
    n8n = N8nStandIn()
    svc = await make_service(make_settings(), n8n)
    body = event_body("évt_ü1")
    response = await svc.post_event(body)
    assert response.json() == {"ok": True, "duplicate": False, "deliveries": 1}
    [call] = n8n.calls
    assert call.headers["Idempotency-Key"] == "acme:%C3%A9vt_%C3%BC1:weekly-recap"
    assert json.loads(call.content)["idempotency_key"] == "acme:évt_ü1:weekly-recap"
    [row] = await svc.store.outbox_rows(include_done=True)
    assert row.done_at is not None
    # An ASCII id that looks like an escape is escaped itself: the two never share a key.
    await enqueue(svc, "%C3%A9vt_%C3%BC1")
    assert (await drain(svc))["delivered"] == 1
    assert n8n.calls[1].headers["Idempotency-Key"] == "acme:%25C3%25A9vt_%25C3%25BC1:weekly-recap"


async def test_non_ascii_tenant_id_is_delivered(make_service: Any) -> None:
    n8n = N8nStandIn()
    tenants = {"café": TenantConfig("café", stripe_webhook_secrets=("whsec_cafe",))}
    svc = await make_service(make_settings(tenants=tenants), n8n)
    await enqueue(svc, "evt_t1", "evt_t2", tenant="café")
    report = await drain(svc)
    assert (report["delivered"], report["internal_errors"]) == (2, 0)
    assert {c.headers["X-Tenant-Id"] for c in n8n.calls} == {"caf%C3%A9"}
    assert {json.loads(c.content)["tenant_id"] for c in n8n.calls} == {"café"}


async def test_unparsable_webhook_url_retries_then_dead_letters(make_service: Any) -> None:
    n8n = N8nStandIn()
    settings = make_settings(n8n_webhook_url="http://[::1/webhook", n8n_max_retries=2)
    svc = await make_service(settings, n8n)
    await enqueue(svc, "evt_u1", "evt_u2", "evt_u3")
    totals = {"internal_errors": 0, "retried": 0, "dead_lettered": 0}
    for _ in range(10):
        report = await drain(svc)
        for key in totals:
            totals[key] += report[key]
        if report["claimed"] == 0 and not await svc.store.outbox_rows():
            break
        svc.clock.advance(1)
    # Three attempts each (the first try and two retries), every one INTERNAL, then the DLQ.
    assert totals == {"internal_errors": 9, "retried": 6, "dead_lettered": 3}
    assert n8n.calls == []
    entries = (await svc.store.dlq_list(DlqFilter(), now=svc.clock.now())).entries
    assert sorted(e.payload["event_id"] for e in entries) == ["evt_u1", "evt_u2", "evt_u3"]
    for entry in entries:
        assert entry.error_code == ErrorCode.INTERNAL
        assert [e.code for e in entry.errors] == [ErrorCode.INTERNAL] * 3
        # The error's type, not its text (which could quote the URL and its credentials).
        assert entry.errors[0].message == "InvalidURL while calling n8n"


async def test_overflowing_delay_and_ttl_are_clamped(make_service: Any) -> None:
    n8n = N8nStandIn(status=503)
    huge = 10**18  # milliseconds: far past year 9999
    settings = make_settings(n8n_base_delay_ms=huge, n8n_max_delay_ms=huge, n8n_dlq_ttl_hours=1e300)
    svc = await make_service(settings, n8n)
    await enqueue(svc, "evt_o1")
    report = await drain(svc)
    assert (report["retried"], report["internal_errors"]) == (1, 0)
    [row] = await svc.store.outbox_rows()
    assert row.next_attempt_at - svc.clock.now() == LONGEST
    n8n.status = 200
    svc.clock.advance(LONGEST.total_seconds())
    assert (await drain(svc))["delivered"] == 1
    # A permanent failure with the huge TTL: dead-lettered, expiring LONGEST later.
    n8n.status = 400
    await enqueue(svc, "evt_o2")
    assert (await drain(svc))["dead_lettered"] == 1
    [entry] = (await svc.store.dlq_list(DlqFilter(), now=svc.clock.now())).entries
    assert entry.expires_at - entry.created_at == LONGEST


async def test_a_poison_row_does_not_stop_the_others(make_service: Any) -> None:
    """One row whose handling raises (a store bug on its id) is retried; the batch goes on."""
    n8n = N8nStandIn()
    svc = await make_service(make_settings(), n8n)
    await enqueue(svc, "evt_p0", "evt_p1", "evt_p2", "evt_p3")
    [poison] = [r for r in await svc.store.outbox_rows() if r.event_id == "evt_p0"]
    store = svc.store
    real_complete = store.complete

    async def complete(outbox_id: str, token: str, *, now: Any) -> bool:
        if outbox_id == poison.id:
            raise RuntimeError("secret-xyz in a message")
        return await real_complete(outbox_id, token, now=now)

    store.complete = complete  # type: ignore[method-assign]
    report = await drain(svc)
    # The poison row's delivery reached n8n: it is left to its lease, never re-sent by a retry.
    assert (report["delivered"], report["failed"], report["internal_errors"]) == (3, 1, 1)
    assert "secret-xyz" not in json.dumps(report)
    store.complete = real_complete  # type: ignore[method-assign]
    svc.clock.advance(svc.app.state.service.dispatcher.lease.total_seconds() + 1)
    assert (await drain(svc))["delivered"] == 1
    assert await svc.store.outbox_rows() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("N8N_WEBHOOK_URL", "http://[::1/webhook"),
        ("N8N_BASE_DELAY_MS", str(10**18)),
        ("N8N_DLQ_TTL_HOURS", "1e300"),
    ],
)
def test_the_config_refuses_these_settings_and_the_layer_still_survives_them(
    key: str, value: str
) -> None:
    """`serve` refuses each value up front (exit 2); a program that builds `Settings` itself
    still reaches the dispatcher with them, which is why the tests above hold the layer to it."""
    with pytest.raises(ConfigError) as info:
        load_settings({key: value})
    assert info.value.key == key
    s = Settings(n8n_dlq_ttl_hours=1e300)
    assert s.tenant("any").dlq_ttl == LONGEST
    assert replace(s, n8n_dlq_ttl_hours=24).tenant("any").dlq_ttl.total_seconds() == 86400
