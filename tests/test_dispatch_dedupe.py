"""The dispatcher against the fake n8n with Remove Duplicates behind the webhook, on virtual time.

A first call times out after n8n ran the workflow; the retry carries the same idempotency key
and the dedupe node drops it. What n8n answers depends on the webhook's response mode
(n8n/README.md, "Making your workflows idempotent"): with "first entry JSON" a 500 `No item to
return was found`, which a dispatcher retrying every 5xx would retry until it dead-letters a
delivery that already took effect (`classify_status` alone shows that); ours recognises that
answer as done. With "all entries" n8n answers 200 []. Either way the effect happens once.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from harness.fakes.faults import parse_profile
from harness.fakes.n8n import FakeN8n
from harness.fakes.n8n_export import parse_workflow
from harness.vclock import VirtualClock, run
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.errors import ErrorCode
from reliability.events import DeadLettered, Delivered, Event, Retrying
from reliability.n8n import NO_ITEM_ANSWER, classify_status
from reliability.store import NewDelivery, SqliteStore

KEY = "t1:evt_1:intake"
SETTINGS = Settings(
    n8n_webhook_url="http://fake-n8n.invalid/webhook",
    n8n_max_retries=3,
    n8n_base_delay_ms=1000,
    n8n_max_delay_ms=30000,
    n8n_read_timeout_ms=5000,
)
# The first call runs the workflow, then hangs past the dispatcher's 5 s read timeout.
SLOW_FIRST = {"rules": [{"fail_first": {"count": 1, "fault": "hang"}, "hang_for": 60}]}


def workflow(response_data: str) -> Any:
    def node(name: str, type_: str, **params: Any) -> dict[str, Any]:
        version = 2 if type_ in ("webhook", "removeDuplicates") else 3.4
        return {"name": name, "type": f"n8n-nodes-base.{type_}", "typeVersion": version,
                "parameters": params}  # fmt: skip

    nodes = [
        node("Webhook", "webhook", httpMethod="POST", path="intake", responseMode="lastNode",
             responseData=response_data),
        node("Remove Duplicates", "removeDuplicates",
             operation="removeItemsSeenInPreviousExecutions",
             dedupeValue="={{ $json.body.idempotency_key }}"),
        node("Work", "set", mode="raw", jsonOutput='{"status": "processed"}'),
    ]  # fmt: skip
    connections = {
        a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(nodes)
    }
    raw = {"name": "intake", "active": True, "nodes": nodes, "connections": connections}
    return parse_workflow(raw, source="intake.json")


def deliver_once(response_data: str) -> tuple[list[Event], FakeN8n, list[str]]:
    """One delivery through the dispatcher; its events, the fake, and the DLQ's error codes."""

    async def main(clock: VirtualClock) -> tuple[list[Event], FakeN8n, list[str]]:
        fake = FakeN8n(
            [workflow(response_data)], clock=clock, faults=parse_profile(SLOW_FIRST, source="t")
        )
        store = SqliteStore(":memory:")
        await store.migrate()
        events: list[Event] = []
        dispatcher = Dispatcher(
            SETTINGS, store, clock, transport=fake.transport, rng=random.Random(1),
            observers=[events.append],
        )  # fmt: skip
        try:
            payload = {"tenant_id": "t1", "idempotency_key": KEY}
            accepted = await store.accept_event(
                "t1", "evt_1", [NewDelivery("t1", "intake", payload, KEY)], now=clock.now()
            )
            await dispatcher.deliver(list(accepted.outbox_ids))
            dead = [e for e in events if isinstance(e, DeadLettered)]
            codes = []
            for d in dead:
                entry = await store.dlq_get(d.dlq_id, now=clock.now())
                assert entry is not None
                codes = [f"{e.code.value} {e.message}" for e in entry.errors]
            return events, fake, codes
        finally:
            await dispatcher.aclose()
            await store.close()

    return run(main)


def test_first_entry_json_answers_the_retry_500_which_the_dispatcher_takes_as_done() -> None:
    events, fake, codes = deliver_once("firstEntryJson")
    statuses = [e.status for e in fake.journal.entries()]
    assert statuses == [None, 500]  # timed out after the run, then n8n's "No item to return"
    assert [r.status for r in fake.executions] == ["success", "success"]
    assert fake.executions.effects() == {KEY: 1}
    assert [r.cause for r in events if isinstance(r, Retrying)] == [ErrorCode.TIMEOUT]
    assert [type(e) for e in events if isinstance(e, Delivered | DeadLettered)] == [Delivered]
    assert codes == []


def test_a_dispatcher_retrying_every_5xx_would_dead_letter_what_took_effect() -> None:
    # The same 500 through the plain status rule: retryable, so the delivery that already took
    # effect would be retried N8N_MAX_RETRIES times and dead-lettered.
    assert classify_status(500) is ErrorCode.HTTP_5XX
    assert NO_ITEM_ANSWER == b'{"code":0,"message":"No item to return was found"}'
    fake = FakeN8n([workflow("firstEntryJson")])

    async def twice() -> list[tuple[int, bytes]]:
        async with fake.client() as client:
            body = {"idempotency_key": KEY}
            answers = [await client.post("/webhook/intake", json=body) for _ in range(2)]
        return [(a.status_code, a.content) for a in answers]

    assert asyncio.run(twice())[1] == (500, NO_ITEM_ANSWER)  # the fake says what n8n says


def test_all_entries_answers_the_duplicate_200_and_the_delivery_is_done() -> None:
    events, fake, codes = deliver_once("allEntries")
    assert [e.status for e in fake.journal.entries()] == [None, 200]
    assert fake.executions.effects() == {KEY: 1}
    assert [type(e) for e in events if isinstance(e, Delivered | DeadLettered)] == [Delivered]
    assert codes == []
