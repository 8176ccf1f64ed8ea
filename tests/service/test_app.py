"""The service end to end on real Postgres: intake -> outbox -> dispatcher -> n8n -> done/DLQ."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import schemathesis
from service_support import (
    ADMIN,
    CRON,
    ManualClock,
    N8nStandIn,
    Service,
    event_body,
    make_settings,
    stripe_header,
)

from harness.testing.postgres import PgDatabase
from reliability.app import create_app
from reliability.config import Settings
from reliability.intake import Intake
from reliability.openapi import ERROR_CODES, openapi_document

pytestmark = pytest.mark.postgres

AUTH = {"authorization": f"Bearer {ADMIN}"}


async def test_event_is_answered_then_delivered_once(make_service: Any) -> None:
    n8n = N8nStandIn()
    svc = await make_service(make_settings(), n8n)
    body = event_body("evt_e2e", "invoice.paid")
    response = await svc.post_event(body)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "duplicate": False, "deliveries": 1}
    # The client returns once the delivery pool has seen the delivery through.
    [call] = n8n.calls
    assert str(call.url) == "http://n8n.test/webhook/weekly-recap"
    assert call.headers["Idempotency-Key"] == "acme:evt_e2e:weekly-recap"
    assert call.headers["X-N8N-API-KEY"] == "n8n-key-1"
    payload = json.loads(call.content)
    assert payload["tenant_id"] == "acme"
    assert payload["event_id"] == "evt_e2e"
    assert payload["object"]["amount_paid"] == 4200
    [row] = await svc.store.outbox_rows(include_done=True)
    assert row.done_at is not None
    assert await svc.store.outbox_rows() == []
    # Stripe retries the same event: 200 duplicate, nothing dispatched.
    again = await svc.post_event(body)
    assert (again.status_code, again.content) == (200, b'{"ok":true,"duplicate":true}')
    assert len(n8n.calls) == 1


async def test_answer_is_sent_before_any_n8n_call(make_service: Any) -> None:
    order: list[str] = []
    n8n = N8nStandIn(on_call=lambda _: order.append("n8n"))
    svc = await make_service(make_settings(), n8n)
    body = event_body("evt_order")
    headers = [(b"stripe-signature", stripe_header(body).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/stripe/webhook/acme",
        "raw_path": b"/api/stripe/webhook/acme",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            order.append("answered")

    await svc.app(scope, receive, send)
    await svc.app.state.service.pool.wait_idle()
    assert sent[0]["status"] == 200
    assert order == ["answered", "n8n"]


async def test_n8n_failing_until_dlq_then_admin_retry(make_service: Any) -> None:
    n8n = N8nStandIn(status=503)
    svc = await make_service(make_settings(), n8n)
    assert (await svc.post_event(event_body("evt_fail"))).status_code == 200
    # max_retries=2: three attempts, the same idempotency key each time, then the DLQ.
    assert n8n.keys() == ["acme:evt_fail:weekly-recap"] * 3
    assert await svc.store.outbox_rows() == []
    listing = (await svc.client.get("/api/admin/dlq", headers=AUTH)).json()
    [entry] = listing["entries"]
    assert entry["error_code"] == "HTTP_5XX"
    assert entry["idempotency_key"] == "acme:evt_fail:weekly-recap"
    assert entry["event_id"] == "evt_fail"
    assert [e["attempt"] for e in entry["errors"]] == [1, 2, 3]
    assert listing["next_cursor"] is None

    metrics = (await svc.client.get("/metrics")).text
    assert 'reliability_delivery_attempts_total{outcome="HTTP_5XX",tenant="acme"} 3.0' in metrics
    assert 'reliability_retries_total{cause="HTTP_5XX",tenant="acme"} 2.0' in metrics
    assert 'reliability_deliveries_total{outcome="dead_lettered",tenant="acme"} 1.0' in metrics
    assert 'reliability_dlq_depth{error_code="HTTP_5XX",tenant="acme"} 1.0' in metrics
    assert 'reliability_intake_results_total{code="ACCEPTED",tenant="acme"} 1.0' in metrics

    n8n.status = 200
    retry = await svc.client.post(f"/api/admin/dlq/{entry['id']}/retry", headers=AUTH)
    assert retry.status_code == 200
    outbox_id = retry.json()["outbox_id"]
    assert n8n.keys()[-1] == "acme:evt_fail:weekly-recap"
    assert len(n8n.calls) == 4
    [row] = [r for r in await svc.store.outbox_rows(include_done=True) if r.id == outbox_id]
    assert row.done_at is not None
    assert row.retry_count == 1
    assert (await svc.client.get(f"/api/admin/dlq/{entry['id']}", headers=AUTH)).status_code == 404
    again = await svc.client.post(f"/api/admin/dlq/{entry['id']}/retry", headers=AUTH)
    assert again.json()["code"] == "NOT_FOUND"
    metrics = (await svc.client.get("/metrics")).text
    assert 'reliability_dlq_depth{error_code="HTTP_5XX",tenant="acme"}' not in metrics
    assert 'reliability_deliveries_total{outcome="delivered",tenant="acme"} 1.0' in metrics


async def test_permanent_4xx_goes_to_dlq_at_once(make_service: Any) -> None:
    n8n = N8nStandIn(status=404)
    svc = await make_service(make_settings(), n8n)
    await svc.post_event(event_body("evt_404", "invoice.payment_failed"))
    assert len(n8n.calls) == 1
    [entry] = (await svc.client.get("/api/admin/dlq", headers=AUTH)).json()["entries"]
    assert (entry["error_code"], entry["workflow_name"]) == ("HTTP_4XX", "notify-gap-fill")


async def test_body_limit_413(make_service: Any) -> None:
    svc = await make_service(make_settings(reliability_body_limit_bytes=1000), N8nStandIn())
    big = event_body("evt_big", pad="x" * 2000)
    response = await svc.post_event(big)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(5):
            yield b"x" * 400

    streamed = await svc.client.post(
        "/api/stripe/webhook/acme", content=chunks(), headers={"stripe-signature": "t=1,v1=a"}
    )
    assert streamed.status_code == 413
    assert "content-length" not in streamed.request.headers
    assert await svc.store.outbox_rows() == []


async def test_admin_auth(make_service: Any) -> None:
    svc = await make_service(make_settings(), N8nStandIn())
    for method, path in (
        ("GET", "/api/admin/dlq"),
        ("GET", "/api/admin/dlq/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/admin/dlq/00000000-0000-0000-0000-000000000000/retry"),
        ("POST", "/api/admin/dlq/retry"),
        ("POST", "/api/admin/dlq/purge"),
    ):
        none = await svc.client.request(method, path)
        assert (none.status_code, none.json()["code"]) == (401, "UNAUTHORIZED")
        assert none.headers["www-authenticate"].startswith("Bearer")
        wrong = await svc.client.request(method, path, headers={"authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["code"]) == (403, "FORBIDDEN")
        basic = await svc.client.request(method, path, headers={"authorization": f"Basic {ADMIN}"})
        assert basic.status_code == 401
    off = await make_service(make_settings(reliability_admin_token=""), N8nStandIn())
    refused = await off.client.get("/api/admin/dlq", headers=AUTH)
    assert (refused.status_code, refused.json()["code"]) == (503, "ADMIN_DISABLED")


async def _fill_dlq(svc: Service, n8n: N8nStandIn, events: list[tuple[str, str, str]]) -> None:
    n8n.status = 422
    for tenant, event_id, type_ in events:
        secret = "whsec_globex" if tenant == "globex" else None
        body = event_body(event_id, type_)
        headers = {
            "stripe-signature": stripe_header(body, secret) if secret else stripe_header(body)
        }
        response = await svc.client.post(
            f"/api/stripe/webhook/{tenant}", content=body, headers=headers
        )
        assert response.status_code == 200
        svc.clock.advance(1)  # distinct created_at, so the order is known


async def test_admin_list_filter_paginate_retry_many_purge(make_service: Any) -> None:
    n8n = N8nStandIn()
    clock = ManualClock()
    svc = await make_service(make_settings(n8n_dlq_ttl_hours=1.0), n8n, clock)
    events = [("acme", f"evt_a{i}", "invoice.paid") for i in range(5)]
    events += [("acme", f"evt_b{i}", "invoice.payment_failed") for i in range(2)]
    events += [("globex", f"evt_g{i}", "invoice.paid") for i in range(3)]
    await _fill_dlq(svc, n8n, events)

    async def list_all(**params: Any) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        cursor = None
        for _ in range(20):
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = (await svc.client.get("/api/admin/dlq", params=query, headers=AUTH)).json()
            seen += page["entries"]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("pagination did not end")

    everything = await list_all(limit=3)
    assert [e["event_id"] for e in everything] == [e for _, e, _ in reversed(events)]
    acme = await list_all(tenant_id="acme", limit=2)
    assert {e["tenant_id"] for e in acme} == {"acme"}
    assert len(acme) == 7
    gap = await list_all(workflow="notify-gap-fill")
    assert sorted(e["event_id"] for e in gap) == ["evt_b0", "evt_b1"]
    assert await list_all(error_code="HTTP_5XX") == []
    assert len(await list_all(error_code="HTTP_4XX")) == 10

    one = await svc.client.get(f"/api/admin/dlq/{everything[0]['id']}", headers=AUTH)
    assert one.json() == {"ok": True, "entry": everything[0]}
    for bad in (
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "x"},
        {"error_code": "NOPE"},
        {"tenant_id": "a\x00b"},
        {"workflow": ""},
    ):
        response = await svc.client.get("/api/admin/dlq", params=bad, headers=AUTH)
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_PARAMETER"), bad
    for cursor in (
        "garbage",
        "eyJ4IjoxfQ",
        "WyIyMDI0LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwibm90LWEtdXVpZCJd",
    ):
        response = await svc.client.get("/api/admin/dlq", params={"cursor": cursor}, headers=AUTH)
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_CURSOR"), cursor

    n8n.status = 200
    many = await svc.client.post(
        "/api/admin/dlq/retry", params={"tenant_id": "globex", "limit": 2}, headers=AUTH
    )
    assert many.json()["retried"] == 2
    assert many.json()["skipped"] == 0
    assert len(await list_all(tenant_id="globex")) == 1
    delivered = [
        json.loads(c.content)["event_id"] for c in n8n.calls if c.headers["x-tenant-id"] == "globex"
    ]
    assert sorted(delivered[-2:]) == ["evt_g1", "evt_g2"]

    # TTL: an hour later every entry is invisible; purge removes exactly those rows.
    clock.advance(3600)
    assert await list_all() == []
    purged = await svc.client.post("/api/admin/dlq/purge", headers=AUTH)
    assert purged.json() == {"ok": True, "purged": 8}
    assert (await svc.client.post("/api/admin/dlq/purge", headers=AUTH)).json()["purged"] == 0


async def test_drain_endpoint(make_service: Any) -> None:
    n8n = N8nStandIn()
    svc = await make_service(make_settings(), n8n)
    intake = Intake(svc.app.state.service.settings, svc.store, svc.clock)
    for i in range(7):
        body = event_body(f"evt_d{i}")
        assert (await intake.handle("acme", stripe_header(body), body)).outbox_ids
    assert n8n.calls == []  # the intake alone never calls n8n

    assert (await svc.client.post("/api/cron/drain")).status_code == 403
    bad = await svc.client.post("/api/cron/drain", params={"secret": CRON, "batch": "0"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_PARAMETER")
    bad = await svc.client.post(f"/api/cron/drain?secret={CRON}&budget_seconds=nan")
    assert bad.status_code == 400
    drained = await svc.client.post(
        "/api/cron/drain", params={"batch": 3}, headers={"authorization": f"Bearer {CRON}"}
    )
    report = drained.json()
    assert report["ok"] is True
    assert (report["claimed"], report["delivered"]) == (7, 7)
    assert sorted(n8n.keys()) == sorted(f"acme:evt_d{i}:weekly-recap" for i in range(7))
    again = (await svc.client.post(f"/api/cron/drain?secret={CRON}")).json()
    assert (again["claimed"], again["delivered"]) == (0, 0)
    off = await make_service(make_settings(cron_secret=""), n8n)
    refused = await off.client.post("/api/cron/drain")
    assert (refused.status_code, refused.content) == (500, b'{"ok":false,"code":"NO_SECRET_SET"}')


async def test_two_instances_draining_deliver_each_row_once(make_service: Any) -> None:
    n8n = N8nStandIn()
    a = await make_service(make_settings(), n8n)
    b = await make_service(make_settings(), n8n)
    intake = Intake(a.app.state.service.settings, a.store, a.clock)
    expected = set()
    for i in range(60):
        body = event_body(f"evt_c{i}")
        await intake.handle("acme", stripe_header(body), body)
        expected.add(f"acme:evt_c{i}:weekly-recap")

    async def drain(svc: Service) -> int:
        delivered = 0
        for _ in range(50):
            report = (await svc.client.post(f"/api/cron/drain?secret={CRON}&batch=4")).json()
            delivered += report["delivered"]
            if report["claimed"] == 0:
                return delivered
        raise AssertionError("drain did not finish")

    got_a, got_b = await asyncio.gather(drain(a), drain(b))
    assert got_a + got_b == 60
    assert got_a > 0
    assert got_b > 0
    assert sorted(n8n.keys()) == sorted(expected)  # each once
    assert await a.store.outbox_rows() == []


async def test_ops_routes(make_service: Any, pg_database: PgDatabase) -> None:
    svc = await make_service(make_settings(), N8nStandIn())
    assert (await svc.client.get("/healthz")).json() == {"ok": True}
    assert (await svc.client.get("/readyz")).json() == {"ok": True}
    missing = await svc.client.get("/nope")
    assert (missing.status_code, missing.json()) == (404, {"ok": False, "code": "NOT_FOUND"})
    wrong_method = await svc.client.get("/api/stripe/webhook/acme")
    assert wrong_method.json()["code"] == "METHOD_NOT_ALLOWED"
    metrics = await svc.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE reliability_intake_results_total counter" in metrics.text
    doc = (await svc.client.get("/openapi.json")).json()
    assert doc == json.loads(json.dumps(openapi_document()))

    store = pg_database.open_store(max_size=1)
    await store.migrate()
    down = create_app(make_settings(), store)
    await store.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=down), base_url="http://t") as c:
        response = await c.get("/readyz")
        assert (response.status_code, response.json()["code"]) == (503, "STORE_UNAVAILABLE")
        body = event_body("evt_down")
        response = await c.post(
            "/api/stripe/webhook/acme",
            content=body,
            headers={"stripe-signature": stripe_header(body)},
        )
        assert (response.status_code, response.json()["code"]) == (503, "STORE_UNAVAILABLE")
        drained = await c.post(f"/api/cron/drain?secret={CRON}")
        assert (drained.status_code, drained.json()["code"]) == (503, "STORE_UNAVAILABLE")
    await down.state.service.dispatcher.aclose()


def test_openapi_document_is_valid_and_complete() -> None:
    doc = openapi_document()
    schemathesis.openapi.from_dict(doc).validate()
    app = create_app(Settings(), store=None)  # type: ignore[arg-type]
    routes = {(r.path, m.lower()) for r in app.routes for m in r.methods or () if m != "HEAD"}  # type: ignore[attr-defined]
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    codes = answer["content"]["application/json"]["schema"]["properties"]["code"]
                    assert set(codes["enum"]) <= set(ERROR_CODES), (path, method, status)
