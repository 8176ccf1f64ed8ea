"""Remove Duplicates behind a webhook, as recorded on n8n 2.8.4: what a duplicate answers in each
response mode, how the execution list records it, missing keys, the bounded history, and the
history surviving a restart (in-process and served)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.data import data_path
from harness.fakes.faults import parse_profile
from harness.fakes.n8n import FakeN8n, FakeN8nServer
from harness.fakes.n8n_dedupe import HISTORY_FULL
from harness.fakes.n8n_export import load_workflows, parse_workflow

Make = Callable[[FakeN8n], Any]
SAMPLE = data_path("n8n", "examples", "idempotent-intake.json")
KEY_VALUE = "local-test-webhook-key"
CREDENTIAL = f"Reliability webhook key=X-N8N-Webhook-Key:{KEY_VALUE}"
NO_ITEM = b'{"code":0,"message":"No item to return was found"}'


def _node(name: str, type_: str, version: float, **params: Any) -> dict[str, Any]:
    return {"name": name, "type": f"n8n-nodes-base.{type_}", "typeVersion": version,
            "parameters": params, "id": f"id-{name}"}  # fmt: skip


def _link(to: str) -> list[dict[str, Any]]:
    return [{"node": to, "type": "main", "index": 0}]


def deduped(
    mode: str = "lastNode",
    data: str = "firstEntryJson",
    *,
    path: str = "in",
    key: str = "={{ $json.body.idempotency_key }}",
    options: dict[str, Any] | None = None,
    discarded: bool = False,
) -> dict[str, Any]:
    """Webhook -> Remove Duplicates -> Work (-> Respond with responseNode)."""
    nodes = [
        _node("Webhook", "webhook", 2, httpMethod="POST", path=path, responseMode=mode,
              responseData=data),
        _node("Remove Duplicates", "removeDuplicates", 2,
              operation="removeItemsSeenInPreviousExecutions", dedupeValue=key,
              options=options or {}),
        _node("Work", "set", 3.4, mode="raw",
              jsonOutput='={{ { "done": $json.body.idempotency_key } }}'),
    ]  # fmt: skip
    connections: dict[str, Any] = {
        "Webhook": {"main": [_link("Remove Duplicates")]},
        "Remove Duplicates": {"main": [_link("Work")]},
    }
    if mode == "responseNode":
        nodes.append(_node("Respond", "respondToWebhook", 1.5, respondWith="json",
                           responseBody='={{ { "ok": true, "key": $json.done } }}',
                           options={"responseCode": 201}))  # fmt: skip
        connections["Work"] = {"main": [_link("Respond")]}
    if discarded:
        nodes.append(_node("Seen", "set", 3.4, mode="raw", jsonOutput='{"duplicate": true}'))
        connections["Remove Duplicates"]["main"].append(_link("Seen"))
    return {"name": f"wf-{path}", "id": f"wf-{path}", "active": True, "nodes": nodes,
            "connections": connections}  # fmt: skip


def fake_of(*raws: dict[str, Any], data_dir: Path | None = None) -> FakeN8n:
    workflows = [parse_workflow(raw, source=f"{raw['name']}.json") for raw in raws]
    return FakeN8n(workflows, data_dir=data_dir)


DUPLICATE_ANSWERS = [
    # (mode, responseData, first answer, duplicate answer): the recorded consequences
    ("lastNode", "firstEntryJson", (200, b'{"done":"k1"}'), (500, NO_ITEM)),
    ("lastNode", "allEntries", (200, b'[{"done":"k1"}]'), (200, b"[]")),
    ("onReceived", "firstEntryJson", (200, b'{"message":"Workflow was started"}'),
     (200, b'{"message":"Workflow was started"}')),
    ("responseNode", "firstEntryJson", (201, b'{"ok":true,"key":"k1"}'), (200, b"")),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "data", "first", "duplicate"), DUPLICATE_ANSWERS)
async def test_a_duplicate_answers_as_n8n_does_in_each_response_mode_and_runs_successfully(
    target_factory: Make, mode: str, data: str, first: Any, duplicate: Any
) -> None:
    target = target_factory(fake_of(deduped(mode, data)))
    body = {"idempotency_key": "k1"}
    answers = [await target.client.post("/webhook/in", json=body) for _ in range(2)]
    assert [(a.status_code, a.content) for a in answers] == [first, duplicate]
    if duplicate[0] == 500:
        assert answers[1].headers["content-type"] == "application/json; charset=utf-8"
    runs = list(target.fake.executions)
    assert [r.status for r in runs] == ["success", "success"]  # n8n's list: both succeeded
    assert [(r.kept_keys, r.dropped_keys) for r in runs] == [(("k1",), ()), ((), ("k1",))]
    assert target.fake.executions.effects() == {"k1": 1}


async def test_a_missing_key_counts_as_the_empty_string() -> None:
    fake = fake_of(deduped("lastNode", "allEntries"))
    async with fake.client() as client:
        answers = [await client.post("/webhook/in", json=body) for body in ({}, {"other": 1})]
        other = await client.post("/webhook/in", json={"idempotency_key": "k2"})
    assert [a.json() for a in answers] == [[{}], []]  # the second keyless call is dropped
    assert other.json() == [{"done": "k2"}]
    assert fake.executions.effects() == {"": 1, "k2": 1}


@pytest.mark.parametrize(
    ("value", "key"),
    [(7, "7"), (1.5, "1.5"), (True, "true"), (None, ""), ([1, "a"], "1,a"),
     ({"a": 1}, "[object Object]")],
)  # fmt: skip
async def test_key_values_are_written_as_javascripts_to_string(value: Any, key: str) -> None:
    fake = fake_of(deduped("lastNode", "allEntries"))
    async with fake.client() as client:
        await client.post("/webhook/in", json={"idempotency_key": value})
    assert fake.executions.effects() == {key: 1}


async def test_the_discarded_output_can_answer_the_duplicate() -> None:
    fake = fake_of(deduped(discarded=True))
    async with fake.client() as client:
        answers = [await client.post("/webhook/in", json={"idempotency_key": "k"}) for _ in "ab"]
    assert [(a.status_code, a.json()) for a in answers] == [
        (200, {"done": "k"}),
        (200, {"duplicate": True}),
    ]


async def test_node_scope_keeps_one_history_per_node_and_workflow_scope_shares_it() -> None:
    per_node = fake_of(deduped(path="a"), deduped(path="b"))
    async with per_node.client() as client:
        statuses = [
            (await client.post(f"/webhook/{p}", json={"idempotency_key": "k"})).status_code
            for p in "ab"
        ]
    assert statuses == [200, 200]
    both = deduped(path="a", options={"scope": "workflow"})
    second = json.loads(json.dumps(both["nodes"][1]))
    second["name"], second["id"] = "Again", "id-Again"
    second["parameters"]["dedupeValue"] = "={{ $json.done }}"
    both["nodes"].append(second)
    both["connections"]["Work"] = {"main": [_link("Again")]}
    fake = fake_of(both)
    async with fake.client() as client:
        r = await client.post("/webhook/a", json={"idempotency_key": "k"})
    assert (r.status_code, r.content) == (500, NO_ITEM)  # "Again" saw the key the first kept
    (run,) = fake.executions
    assert (run.kept_keys, run.dropped_keys) == (("k",), ("k",))


async def test_a_full_history_fails_the_node_and_the_execution() -> None:
    fake = fake_of(deduped(options={"historySize": 2}))
    async with fake.client() as client:
        statuses = [
            (await client.post("/webhook/in", json={"idempotency_key": k})).status_code
            for k in ("a", "b", "c", "a")
        ]
    assert statuses == [200, 200, 500, 500]  # full: n8n fails rather than forgets
    runs = list(fake.executions)
    assert [r.status for r in runs] == ["success", "success", "error", "error"]
    assert runs[2].error == f"Remove Duplicates: {HISTORY_FULL}"


async def test_a_fault_in_front_of_n8n_leaves_no_history() -> None:
    fake = fake_of(deduped("lastNode", "allEntries"))
    rule = {"fail_first": {"count": 1, "fault": "close"}, "run_before_fault": False}
    fake.faults.load(parse_profile({"rules": [rule]}))
    async with fake.client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/webhook/in", json={"idempotency_key": "k"})
        again = await client.post("/webhook/in", json={"idempotency_key": "k"})
    assert again.json() == [{"done": "k"}]
    assert len(fake.executions) == 1


async def test_the_history_and_the_executions_survive_a_restart(tmp_path: Path) -> None:
    first = fake_of(deduped("lastNode", "allEntries"), data_dir=tmp_path)
    with FakeN8nServer(first) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.post("/webhook/in", json={"idempotency_key": "k"})).json()
    first.close()
    second = fake_of(deduped("lastNode", "allEntries"), data_dir=tmp_path)
    async with second.client() as client:
        again = await client.post("/webhook/in", json={"idempotency_key": "k"})
    assert again.json() == []
    assert [(r.id, r.kept_keys, r.dropped_keys) for r in second.executions] == [
        (1, ("k",), ()),
        (2, (), ("k",)),
    ]
    memory = fake_of(deduped("lastNode", "allEntries"))  # no directory: a fresh n8n
    async with memory.client() as client:
        assert (await client.post("/webhook/in", json={"idempotency_key": "k"})).json()


def test_the_sample_idempotent_workflow_loads_and_dedupes() -> None:
    (wf,) = load_workflows(SAMPLE)
    spec = wf.webhooks[0]
    assert (spec.path, spec.response_mode, spec.response_data) == (
        "idempotent-intake",
        "lastNode",
        "allEntries",
    )
    fake = FakeN8n([wf])
    item = {"json": {"body": {"idempotency_key": "k", "tenant_id": "t"}}}
    runs = [wf.execute("Webhook", item, dedupe=fake.dedupe) for _ in range(2)]
    assert [r.items for r in runs] == [
        ({"json": {"status": "processed", "idempotency_key": "k", "tenant_id": "t"}},),
        (),
    ]


def test_fake_n8n_command_keeps_the_history_in_its_data_dir(tmp_path: Path) -> None:
    key = {"X-N8N-Webhook-Key": KEY_VALUE}
    body = {"idempotency_key": "k", "tenant_id": "t"}
    answers = []
    for _ in range(2):  # two processes, one after the other, on the same directory
        cmd = [sys.executable, "-m", "harness", "fake-n8n", "--port", "0",
               "--workflows", str(SAMPLE), "--data-dir", str(tmp_path / "state"),
               "--header-auth", CREDENTIAL]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert line.startswith("fake n8n on http://127.0.0.1:"), line
            with httpx.Client(base_url=line.split()[3], timeout=5) as client:
                answers.append(client.post("/webhook/idempotent-intake", headers=key, json=body))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
    assert [a.json() for a in answers] == [
        [{"status": "processed", "idempotency_key": "k", "tenant_id": "t"}],
        [],
    ]
    assert (tmp_path / "state" / "dedupe.jsonl").read_text().count('"key": "k"') == 1
