"""Bounded tables on real Postgres: drain purges delivered outbox rows after
`RELIABILITY_OUTBOX_RETENTION_HOURS` (issue 16, Deliver 4)."""

from __future__ import annotations

import asyncio
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

from reliability.intake import Intake

pytestmark = pytest.mark.postgres

HOUR = 3600.0


async def enqueue(svc: Service, *event_ids: str) -> None:
    intake = Intake(svc.app.state.service.settings, svc.store, svc.clock)
    for event_id in event_ids:
        body = event_body(event_id)
        signature = stripe_header(body, SECRETS[0], t=int(svc.clock.now().timestamp()))
        assert (await intake.handle("acme", signature, body)).outbox_ids


async def drain(svc: Service) -> dict[str, Any]:
    response = await svc.client.post(f"/api/cron/drain?secret={CRON}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def test_drain_purges_delivered_rows_after_the_retention(make_service: Any) -> None:
    settings = make_settings(reliability_outbox_retention_hours=1.0, n8n_dlq_cleanup_interval_ms=1)
    svc = await make_service(settings, N8nStandIn())
    await enqueue(svc, *(f"evt_old{i}" for i in range(5)))
    assert (await drain(svc))["delivered"] == 5
    svc.clock.advance(0.5 * HOUR)
    await enqueue(svc, *(f"evt_new{i}" for i in range(3)))
    first = await drain(svc)
    assert (first["delivered"], first["purged_outbox"]) == (3, 0)
    svc.clock.advance(0.5 * HOUR + 1)
    # The first five are an hour and a second old now; the other three half an hour.
    assert (await drain(svc))["purged_outbox"] == 5
    rows = await svc.store.outbox_rows(include_done=True)
    assert sorted(r.event_id or "" for r in rows) == [f"evt_new{i}" for i in range(3)]
    svc.clock.advance(HOUR)
    assert (await drain(svc))["purged_outbox"] == 3
    assert await svc.store.outbox_rows(include_done=True) == []


async def test_two_instances_purging_at_once_count_each_row_once(make_service: Any) -> None:
    settings = make_settings(reliability_outbox_retention_hours=1.0, n8n_dlq_cleanup_interval_ms=1)
    a = await make_service(settings, N8nStandIn())
    await enqueue(a, *(f"evt_p{i}" for i in range(60)))
    # The manual clock's sleeps are instant, so quota waits time out at once: rows over the
    # tenant's limit are snoozed and delivered by the next drains.
    while (await drain(a))["claimed"]:
        a.clock.advance(60)
    assert len(await a.store.delivered_keys()) == 60
    b = await make_service(settings, N8nStandIn(), a.clock)
    a.clock.advance(HOUR + 1)
    reports = await asyncio.gather(drain(a), drain(b))
    assert sum(r["purged_outbox"] for r in reports) == 60
    assert await a.store.outbox_rows(include_done=True) == []
