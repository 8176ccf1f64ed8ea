"""n8n's public API on the fake: executions (filters, newest first, n8n's cursor, includeData),
one execution, workflows, and the answers for a missing key, a wrong key and an unknown id."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx

from harness.fakes.n8n import DEFAULT_CREDENTIALS, FakeN8n
from harness.fakes.n8n_export import Credentials, parse_workflow
from harness.sim.workflows import sample_workflows

Make = Callable[[FakeN8n], Any]
API = {"X-N8N-API-KEY": "api-key-1"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def workflows() -> list[Any]:
    def wf(path: str, mode: str, *, active: bool = True, fail: bool = False) -> Any:
        nodes: list[dict[str, Any]] = [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
             "parameters": {"httpMethod": "POST", "path": path, "responseMode": mode}},
        ]  # fmt: skip
        connections = {}
        if fail:
            nodes.append({"name": "Stop", "type": "n8n-nodes-base.stopAndError", "typeVersion": 1,
                          "parameters": {"errorMessage": "boom"}})  # fmt: skip
            connections = {"Webhook": {"main": [[{"node": "Stop", "type": "main", "index": 0}]]}}
        raw = {"name": path, "id": f"wf-{path}", "active": active, "nodes": nodes,
               "connections": connections}  # fmt: skip
        return parse_workflow(raw, source=f"{path}.json")

    return [
        wf("ok", "lastNode"),
        wf("bad", "lastNode", fail=True),
        wf("off", "onReceived", active=False),
    ]


async def test_missing_and_wrong_keys_and_unknown_ids(target_factory: Make) -> None:
    target = target_factory(FakeN8n(workflows(), api_keys=["api-key-1"]))
    c = target.client
    missing = await c.get("/api/v1/executions")
    wrong = await c.get("/api/v1/executions", headers={"X-N8N-API-KEY": "nope"})
    unknown = await c.get("/api/v1/executions/999", headers=API)
    assert (missing.status_code, missing.json()) == (
        401,
        {"message": "'X-N8N-API-KEY' header required"},
    )
    assert (wrong.status_code, wrong.json()) == (401, {"message": "unauthorized"})
    assert (unknown.status_code, unknown.json()) == (404, {"message": "Not Found"})


async def test_executions_newest_first_with_filters_and_cursor(target_factory: Make) -> None:
    target = target_factory(FakeN8n(workflows(), api_keys=["api-key-1"]))
    c = target.client
    for path in ("ok", "bad", "ok", "ok"):
        await c.post(f"/webhook/{path}", json={"n": 1})
    everything = (await c.get("/api/v1/executions", headers=API)).json()
    assert [(e["id"], e["workflowId"], e["status"]) for e in everything["data"]] == [
        ("4", "wf-ok", "success"),
        ("3", "wf-ok", "success"),
        ("2", "wf-bad", "error"),
        ("1", "wf-ok", "success"),
    ]
    assert everything["nextCursor"] is None
    first = everything["data"][0]
    assert set(first) == {"id", "finished", "mode", "retryOf", "retrySuccessId", "status",
                          "startedAt", "stoppedAt", "workflowId", "waitTill"}  # fmt: skip
    assert (first["mode"], first["finished"]) == ("webhook", True)
    assert ISO.match(first["startedAt"])
    assert ISO.match(first["stoppedAt"])
    errors = (await c.get("/api/v1/executions", params={"status": "error"}, headers=API)).json()
    assert [e["id"] for e in errors["data"]] == ["2"]
    page = (await c.get("/api/v1/executions", params={"workflowId": "wf-ok", "limit": 2},
                        headers=API)).json()  # fmt: skip
    assert [e["id"] for e in page["data"]] == ["4", "3"]
    assert json.loads(base64.b64decode(page["nextCursor"])) == {"lastId": "3", "limit": 2}
    rest = (await c.get("/api/v1/executions", params={"workflowId": "wf-ok",
                        "cursor": page["nextCursor"]}, headers=API)).json()  # fmt: skip
    assert ([e["id"] for e in rest["data"]], rest["nextCursor"]) == (["1"], None)
    bad = await c.get("/api/v1/executions", params={"cursor": "%%%"}, headers=API)
    assert (bad.status_code, bad.json()) == (400, {"message": "An invalid cursor was provided"})


async def test_one_execution_with_and_without_data(target_factory: Make) -> None:
    target = target_factory(FakeN8n(workflows(), api_keys=["api-key-1"]))
    await target.client.post("/webhook/bad", json={"n": 1})
    plain = (await target.client.get("/api/v1/executions/1", headers=API)).json()
    full = (
        await target.client.get("/api/v1/executions/1", params={"includeData": "true"}, headers=API)
    ).json()
    assert "data" not in plain
    assert (plain["status"], plain["finished"]) == ("error", False)
    result = full["data"]["resultData"]
    assert (result["lastNodeExecuted"], result["error"]) == ("Stop", {"message": "boom"})
    webhook_out = result["runData"]["Webhook"][0]["data"]["main"][0][0]["json"]
    assert webhook_out["body"] == {"n": 1}


async def test_workflows_with_the_active_filter(target_factory: Make) -> None:
    target = target_factory(FakeN8n(workflows(), api_keys=["api-key-1"]))
    c = target.client
    every = (await c.get("/api/v1/workflows", headers=API)).json()
    active = (await c.get("/api/v1/workflows", params={"active": "true"}, headers=API)).json()
    assert [w["id"] for w in every["data"]] == ["wf-ok", "wf-bad", "wf-off"]
    assert [w["id"] for w in active["data"]] == ["wf-ok", "wf-bad"]
    assert active["data"][0]["nodes"][0]["name"] == "Webhook"


async def test_without_keys_the_api_is_off(target_factory: Make) -> None:
    target = target_factory(FakeN8n(workflows()))
    r = await target.client.get("/api/v1/executions", headers=API)
    assert r.status_code == 404
    assert b"Cannot GET /api/v1/executions" in r.content


def test_fake_n8n_command_serves_the_api_for_its_keys() -> None:
    cmd = [sys.executable, "-m", "harness", "fake-n8n", "--port", "0",
           "--api-key", "k1", "--api-key", "k2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("fake n8n on http://127.0.0.1:"), line
        with httpx.Client(base_url=line.split()[3], timeout=5) as client:
            client.post("/webhook/notify-gap-fill", json={},
                        headers={"X-N8N-Webhook-Key": "local-test-webhook-key"})  # fmt: skip
            answers = [
                client.get("/api/v1/executions", headers={"X-N8N-API-KEY": k})
                for k in ("k1", "k2", "k3")
            ]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert [a.status_code for a in answers] == [200, 200, 401]
    assert [e["workflowId"] for e in answers[0].json()["data"]] == ["RhNotifyGapFill1"]


async def test_an_inert_on_received_run_is_listed_with_its_data() -> None:
    # The samples with Remove Duplicates disabled: notify-gap-fill is then Set + No Operation.
    fake = FakeN8n(
        sample_workflows(dedupe=False),
        credentials=Credentials(DEFAULT_CREDENTIALS),
        api_keys=["api-key-1"],
    )
    async with fake.client() as client:
        await client.post("/webhook/notify-gap-fill", json={"idempotency_key": "k"},
                          headers={"X-N8N-Webhook-Key": "local-test-webhook-key"})  # fmt: skip
        got = await client.get("/api/v1/executions/1", params={"includeData": "true"}, headers=API)
    result = got.json()["data"]["resultData"]
    assert result["lastNodeExecuted"] == "Send notifications"
    item = result["runData"]["Webhook"][0]["data"]["main"][0][0]["json"]
    assert item["body"] == {"idempotency_key": "k"}
    assert list(result["runData"]) == [
        "Webhook",
        "Remove Duplicates",
        "Queue notifications",
        "Send notifications",
    ]
