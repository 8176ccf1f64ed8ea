"""Workflows and credentials from n8n's export format; the node subset; refusals."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from harness.fakes.n8n import DEFAULT_CREDENTIALS, DEFAULT_WORKFLOWS
from harness.fakes.n8n_export import (
    CREDENTIALS_FILE,
    CredentialRef,
    WorkflowError,
    credentials_beside,
    load_credentials,
    load_workflows,
    parse_workflow,
)


def webhook(**params: Any) -> dict[str, Any]:
    base = {"httpMethod": "POST", "path": "x", "responseMode": "lastNode"}
    return {
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "parameters": {**base, **params},
    }


def chain(*nodes: dict[str, Any], active: bool = True) -> dict[str, Any]:
    names = [n["name"] for n in nodes]
    connections = {
        a: {"main": [[{"node": b, "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(names)
    }
    return {"name": "wf", "active": active, "nodes": list(nodes), "connections": connections}


def node(name: str, type_: str, version: float = 1, **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": f"n8n-nodes-base.{type_}",
        "typeVersion": version,
        "parameters": params,
    }


def run(raw: dict[str, Any]) -> Any:
    wf = parse_workflow(raw, source="wf.json")
    return wf.execute("Webhook", {"json": {"body": {"a": 1}}})


def test_sample_workflows_load_with_their_webhooks() -> None:
    workflows = load_workflows(DEFAULT_WORKFLOWS)
    specs = {wf.name: wf.webhooks[0] for wf in workflows}
    assert {
        n: (s.path, s.methods, s.response_mode, s.authentication) for n, s in specs.items()
    } == {
        "Notify-10 Gap Fill": ("notify-gap-fill", ("POST",), "onReceived", "headerAuth"),
        "Weekly Recap Processing": ("weekly-recap", ("POST",), "lastNode", "headerAuth"),
        "Client Onboarding": ("client-onboarding", ("POST",), "responseNode", "headerAuth"),
    }
    refs = {s.credential for s in specs.values()}
    assert refs == {CredentialRef("httpHeaderAuth", "RhWebhookKey0001", "Reliability webhook key")}
    for file in DEFAULT_WORKFLOWS.glob("*.json"):  # what `n8n import:workflow` needs
        if file.name == CREDENTIALS_FILE:
            continue
        raw = json.loads(file.read_text())
        assert {"name", "nodes", "connections", "settings", "id", "versionId"} <= set(raw)
        assert all(
            {"id", "name", "type", "typeVersion", "position", "parameters"} <= set(n)
            for n in raw["nodes"]
        )


def test_unsupported_node_is_refused_naming_node_and_type() -> None:
    raw = chain(webhook(), node("Call API", "httpRequest", 4.2, url="https://example.com"))
    with pytest.raises(WorkflowError) as info:
        parse_workflow(raw, source="flows/api.json")
    msg = str(info.value)
    assert msg.startswith("flows/api.json: workflow 'wf': nodes[1]: node 'Call API' has type ")
    assert "'n8n-nodes-base.httpRequest'" in msg


def test_lenient_passes_unsupported_nodes_through() -> None:
    raw = chain(webhook(), node("Call API", "httpRequest", 4.2, url="https://example.com"))
    wf = parse_workflow(raw, source="api.json", lenient=True)
    result = wf.execute("Webhook", {"json": {"body": {"a": 1}}})
    assert (result.last_node, result.items) == ("Call API", ({"json": {"body": {"a": 1}}},))


@pytest.mark.parametrize(
    "expression",
    ["={{ $('Webhook').item.json.body }}", "={{ $json.body.a + 1 }}", "={{ $json.keys() }}"],
)
def test_expressions_outside_the_subset_are_refused_naming_node_and_parameter(
    expression: str,
) -> None:
    raw = chain(webhook(), node("Set", "set", 3.4, mode="raw", jsonOutput=expression))
    with pytest.raises(WorkflowError, match=r"node 'Set' .*parameter 'jsonOutput': \{\{"):
        parse_workflow(raw, source="e.json")


def test_expressions_on_the_webhook_node_are_refused() -> None:
    raw = chain(webhook(path="={{ $json.x }}"))
    with pytest.raises(WorkflowError, match=r"node 'Webhook' .*parameter 'path' is an expression"):
        parse_workflow(raw, source="e.json")


def test_expressions_in_the_subset_are_evaluated_per_item() -> None:
    raw = chain(
        webhook(),
        node("Set", "set", 3.4, mode="raw",
             jsonOutput='={{ { "a": $json.body.a, "h": $json.headers["x-y"], "n": null } }}'),
        node("Text", "set", 3.4, assignments={"assignments": [
            {"name": "t", "value": "=a={{ $json.a }} h={{ $json.h }} n={{ $json.n }}",
             "type": "string"}]}),
    )  # fmt: skip
    wf = parse_workflow(raw, source="wf.json")
    result = wf.execute("Webhook", {"json": {"body": {"a": 1}, "headers": {"x-y": "z"}}})
    assert result.items == ({"json": {"t": "a=1 h=z n="}},)
    assert result.run_data["Set"] == (({"json": {"a": 1, "h": "z", "n": None}},),)


def test_reading_a_property_of_undefined_fails_the_execution_like_javascript() -> None:
    raw = chain(webhook(), node("Set", "set", 3.4, mode="raw", jsonOutput="={{ $json.nope.x }}"))
    result = parse_workflow(raw, source="wf.json").execute("Webhook", {"json": {}})
    assert result.error == "Set: Cannot read properties of undefined (reading 'x')"


SET_CASES = [
    (
        node("Set", "set", 1, values={"string": [{"name": "s", "value": "v"}],
                                      "number": [{"name": "n.m", "value": 2}]}),
        {"body": {"a": 1}, "s": "v", "n": {"m": 2}},
    ),
    (
        node("Set", "set", 2, keepOnlySet=True,
             values={"boolean": [{"name": "b", "value": True}]}),
        {"b": True},
    ),
    (
        node("Set", "set", 3.2,
             fields={"values": [{"name": "n", "type": "numberValue", "numberValue": "3"}]}),
        {"n": 3},
    ),
    (
        node("Set", "set", 3.4, includeOtherFields=True,
             assignments={"assignments": [{"name": "ok", "value": "true", "type": "boolean"}]}),
        {"body": {"a": 1}, "ok": True},
    ),
    (node("Set", "set", 3.4, mode="raw", jsonOutput='{"x": [1, 2]}'), {"x": [1, 2]}),
]  # fmt: skip


@pytest.mark.parametrize(("set_node", "expected"), SET_CASES)
def test_set_node_versions(set_node: dict[str, Any], expected: dict[str, Any]) -> None:
    result = run(chain(webhook(), set_node))
    assert result.items == ({"json": expected},)


def test_noop_respond_and_stop_and_error() -> None:
    respond = node(
        "Respond", "respondToWebhook", 1.1, respondWith="json", responseBody='{"r": 1}',
        options={"responseCode": 201,
                 "responseHeaders": {"entries": [{"name": "X-A", "value": "b"}]}},
    )  # fmt: skip
    result = run(chain(webhook(responseMode="responseNode"), node("Nop", "noOp"), respond))
    assert result.respond is not None
    assert (result.respond.status, result.respond.body, result.respond.headers) == (
        201,
        {"r": 1},
        (("x-a", "b"),),  # the node lowercases header names
    )
    stopped = run(
        chain(webhook(), node("Stop", "stopAndError", errorMessage="nope"), node("Nop", "noOp"))
    )
    assert (stopped.error, stopped.last_node) == ("nope", "Stop")


def test_webhook_defaults_and_refusals() -> None:
    bare = node("Webhook", "webhook", 2, path="/hello/")
    spec = parse_workflow(chain(bare), source="w.json").webhooks[0]
    assert (spec.path, spec.methods, spec.response_mode, spec.response_code) == (
        "hello",
        ("GET",),
        "onReceived",
        200,
    )
    coded = webhook(options={"responseCode": 204})
    assert parse_workflow(chain(coded), source="w.json").webhooks[0].response_code == 204
    for params, fragment in [
        ({"path": ""}, "has no 'path'"),
        ({"path": "u/:id"}, "dynamic webhook path"),
        ({"responseMode": "streaming"}, "responseMode 'streaming' unsupported"),
        ({"authentication": "jwtAuth"}, "authentication 'jwtAuth' unsupported"),
        ({"httpMethod": "TRACE"}, "httpMethod 'TRACE'"),
    ]:
        with pytest.raises(WorkflowError, match=fragment):
            parse_workflow(chain(webhook(**params)), source="w.json")
    with pytest.raises(WorkflowError, match="no enabled Webhook node"):
        parse_workflow(chain(node("Nop", "noOp")), source="w.json")


def test_active_flag_and_override(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(chain(webhook(), active=False)))
    assert [wf.active for wf in load_workflows(tmp_path)] == [False]
    assert [wf.active for wf in load_workflows(tmp_path, active=True)] == [True]


def test_export_all_array_and_errors_name_the_file(tmp_path: Path) -> None:
    many = tmp_path / "all.json"
    many.write_text(json.dumps([chain(webhook(path="a")), chain(webhook(path="b"))]))
    assert [wf.webhooks[0].path for wf in load_workflows(many)] == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(WorkflowError, match=r"bad\.json: not valid JSON"):
        load_workflows(bad)
    with pytest.raises(WorkflowError, match=r"no \*\.json workflow exports"):
        load_workflows(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)


def test_credentials_export(tmp_path: Path) -> None:
    good = tmp_path / "creds.json"
    header_data = {"name": "X-K", "value": "v"}
    basic_data = {"user": "u", "password": "p"}
    header = {"id": "1", "name": "hdr", "type": "httpHeaderAuth", "data": header_data}
    basic = {"id": "2", "name": "basic", "type": "httpBasicAuth", "data": basic_data}
    good.write_text(json.dumps([header, basic]))
    creds = load_credentials(good)
    found = creds.find(CredentialRef("httpHeaderAuth", "nope", "hdr"))  # by name when id misses
    assert found is not None
    assert found.data == {"name": "X-K", "value": "v"}
    assert creds.find(CredentialRef("httpBasicAuth", "1", None)) is None  # type must match
    encrypted = tmp_path / "enc.json"
    encrypted.write_text(
        json.dumps([{"id": "1", "name": "hdr", "type": "httpHeaderAuth", "data": "U2FsdGVk"}])
    )
    with pytest.raises(WorkflowError, match=r"enc\.json\[0\]: credential 'hdr' is encrypted"):
        load_credentials(encrypted)
    incomplete = tmp_path / "inc.json"
    incomplete.write_text(
        json.dumps({"id": "1", "name": "h", "type": "httpHeaderAuth", "data": {"name": "X"}})
    )
    with pytest.raises(WorkflowError, match=r"data\.value missing"):
        load_credentials(incomplete)


def test_conflicting_webhooks_are_refused() -> None:
    from harness.fakes.n8n import FakeN8n

    a = parse_workflow(chain(webhook(path="same")), source="a.json")
    b = parse_workflow(chain(webhook(path="same")), source="b.json")
    with pytest.raises(WorkflowError, match=r"b\.json: .*POST 'same' conflicts with .*a\.json"):
        FakeN8n([a, b])


def test_the_shipped_credentials_file_is_the_default_credential() -> None:
    shipped = load_credentials(DEFAULT_WORKFLOWS / CREDENTIALS_FILE)
    assert list(shipped) == list(DEFAULT_CREDENTIALS)


def test_a_credentials_file_beside_the_workflows_is_loaded_not_parsed_as_one(
    tmp_path: Path,
) -> None:
    for file in DEFAULT_WORKFLOWS.glob("*.json"):
        (tmp_path / file.name).write_bytes(file.read_bytes())
    from harness.fakes.n8n import FakeN8n

    with_file = FakeN8n.from_files(tmp_path)
    assert len(with_file.workflows) == 3  # credentials.json is no workflow
    assert list(with_file.credentials) == list(DEFAULT_CREDENTIALS)
    assert len(FakeN8n.from_files(tmp_path, beside=False).credentials) == 0
    (tmp_path / CREDENTIALS_FILE).unlink()
    assert credentials_beside(tmp_path) is None


def test_remove_duplicates_needs_its_value_to_dedupe_on() -> None:
    # n8n 2.8.4 names the parameter `dedupeValue` and requires it: a workflow without it (or with
    # the name `dedupeField`) runs no call at all ("The workflow has issues"), so the fake
    # refuses it at load, naming the node.
    previous = {"operation": "removeItemsSeenInPreviousExecutions"}
    key = "={{ $json.body.idempotency_key }}"
    good = node("Remove Duplicates", "removeDuplicates", 2, **previous, dedupeValue=key)
    assert parse_workflow(chain(webhook(), good), source="w.json").nodes["Remove Duplicates"]
    for params in ({"dedupeField": key}, {}):
        bad = node("Remove Duplicates", "removeDuplicates", 2, **previous, **params)
        with pytest.raises(WorkflowError, match=r"node 'Remove Duplicates'.*dedupeValue"):
            parse_workflow(chain(webhook(), bad), source="w.json")
