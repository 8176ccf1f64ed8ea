"""`reliability-harness reconcile` against the served fake n8n (public API) and the layer's
store on PostgreSQL: injected mismatches of each kind are found (exit 1), a clean window passes
(exit 0), a refused key is bad input (exit 2)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.cli import main
from harness.fakes.n8n import FakeN8n, FakeN8nServer
from harness.fakes.n8n_export import parse_workflow
from harness.live.reconcile import N8nExecution, reconcile
from harness.testing.postgres import PgDatabase
from reliability.store import NewDelivery

pytestmark = pytest.mark.postgres


def workflow(path: str, *, dedupe: bool) -> Any:
    nodes: list[dict[str, Any]] = [
        {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
         "parameters": {"httpMethod": "POST", "path": path, "responseMode": "lastNode",
                        "responseData": "allEntries"}},
    ]  # fmt: skip
    connections: dict[str, Any] = {}
    if dedupe:
        nodes.append({"name": "Dedupe", "type": "n8n-nodes-base.removeDuplicates",
                      "typeVersion": 2, "parameters": {
                          "operation": "removeItemsSeenInPreviousExecutions",
                          "dedupeValue": "={{ $json.body.idempotency_key }}"}})  # fmt: skip
        connections = {"Webhook": {"main": [[{"node": "Dedupe", "type": "main", "index": 0}]]}}
    raw = {"name": path, "id": f"wf-{path}", "active": True, "nodes": nodes,
           "connections": connections}  # fmt: skip
    return parse_workflow(raw, source=f"{path}.json")


async def deliver(db: PgDatabase, keys: list[str]) -> None:
    """Rows for `keys`, marked delivered as the dispatcher marks them."""
    store = db.open_store()
    await store.migrate()
    now = datetime.now(UTC)
    try:
        for i, key in enumerate(keys):
            payload = {"idempotency_key": key}
            accepted = await store.accept_event(
                "t1", f"evt_{i}", [NewDelivery("t1", "intake", payload, key)], now=now
            )
            for oid in accepted.outbox_ids:
                row = await store.claim(oid, now=now, lease=timedelta(seconds=30))
                assert row is not None
                assert row.lease_token is not None
                assert await store.complete(oid, row.lease_token, now=now)
    finally:
        await store.close()


def test_reconcile_finds_each_kind_of_mismatch(
    pg_database: PgDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(deliver(pg_database, ["k1", "k2", "k3", "k4"]))
    fake = FakeN8n([workflow("intake", dedupe=True), workflow("plain", dedupe=False)],
                   api_keys=["sekrit"])  # fmt: skip
    key_file = tmp_path / "n8n.key"
    key_file.write_text("sekrit\n")
    joiner = "&" if "?" in pg_database.url else "?"
    db_url = f"{pg_database.url}{joiner}options=-csearch_path%3D{pg_database.schema}"
    with FakeN8nServer(fake) as server:
        with httpx.Client(base_url=server.base_url) as client:
            for path, key in [("intake", "k1"), ("intake", "k2"), ("intake", "k2"),
                              ("plain", "k4"), ("plain", "k4"), ("intake", "k5")]:  # fmt: skip
                client.post(f"/webhook/{path}", json={"idempotency_key": key}).raise_for_status()
        args = ["reconcile", "--n8n-url", server.base_url, "--api-key-file", str(key_file),
                "--database-url", db_url]  # fmt: skip
        assert main(args) == 1
        report = json.loads(capsys.readouterr().out)
        assert report == {
            "deliveries": 4,
            "executions": 6,
            "missing": ["k3"],  # delivered, never ran
            "orphans": ["6"],  # k5 ran, never delivered
            "duplicate_effects": {"k4": 2},  # no dedupe node: both took effect; k2 was dropped
            "ok": False,
        }
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert main([*args, "--since", later]) == 0
        key_file.write_text("wrong")
        assert main(args) == 2
        assert "n8n refused the API key" in capsys.readouterr().err


def test_reconcile_is_a_pure_comparison_by_key() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    runs = [N8nExecution("1", "w", "success", at, "a", True),
            N8nExecution("2", "w", "success", at, None, True)]  # fmt: skip
    result = reconcile([], runs)
    assert (result.missing, result.orphans, result.ok) == ((), ("1", "2"), False)
