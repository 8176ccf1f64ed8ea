"""The edges where n8n surprises, read from its source (webhook-request-handler.ts,
body-parser.ts, webhook-helpers.ts): bodies per content type and encoding, CORS and OPTIONS,
Express's page for `/webhook/`, and the control API's YAML; in-process and served."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.fakes.n8n import FakeN8n
from harness.fakes.n8n_bodies import json_error
from harness.fakes.n8n_export import load_credentials, parse_workflow

Make = Callable[[FakeN8n], Any]
PROBLEM = b'{"code":0,"message":"There was a problem executing the workflow"}'


def echo(options: dict[str, Any] | None = None, methods: Any = "POST") -> FakeN8n:
    """A fake with one workflow, POST /webhook/echo, answering {"body": <the parsed body>}."""
    nodes = [
        {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
         "parameters": {"httpMethod": methods, "path": "echo", "responseMode": "lastNode",
                        "options": options or {}}},
        {"name": "Echo", "type": "n8n-nodes-base.set", "typeVersion": 3.4,
         "parameters": {"mode": "raw", "jsonOutput": "={{ { \"body\": $json.body } }}"}},
    ]  # fmt: skip
    connections = {"Webhook": {"main": [[{"node": "Echo", "type": "main", "index": 0}]]}}
    raw = {"name": "echo", "active": True, "nodes": nodes, "connections": connections}
    return FakeN8n([parse_workflow(raw, source="echo.json")])


AT = "in JSON at position"
AFTER_VALUE = "Expected ',' or '}' after property value"
INVALID_JSON = [
    ('{"a":', "Unexpected end of JSON input"),
    ('{"a":1', f"{AFTER_VALUE} {AT} 6 (line 1 column 7)"),
    ('{"a":1 "b"', f"{AFTER_VALUE} {AT} 7 (line 1 column 8)"),
    ('"a" "b"', "Unexpected non-whitespace character after JSON at position 4 (line 1 column 5)"),
    ("{a:1}", f"Expected property name or '}}' {AT} 1 (line 1 column 2)"),
    ('{"a":1,}', f"Expected double-quoted property name {AT} 7 (line 1 column 8)"),
    ("nope", "Unexpected token 'o', \"nope\" is not valid JSON"),
    ('{"a":1}x', "Unexpected non-whitespace character after JSON at position 7 (line 1 column 8)"),
    ("[1,2 3]", f"Expected ',' or ']' after array element {AT} 5 (line 1 column 6)"),
    ('{\n"a" 1}', f"Expected ':' after property name {AT} 6 (line 2 column 5)"),
    ("NaN", '"NaN" is not valid JSON'),
]


@pytest.mark.parametrize(("text", "hint"), INVALID_JSON)
async def test_invalid_json_answers_422_with_v8s_message_and_starts_nothing(
    target_factory: Make, text: str, hint: str
) -> None:
    target = target_factory(echo())
    r = await target.client.post(
        "/webhook/echo", content=text, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json() == {"code": 422, "message": "Failed to parse request body", "hint": hint}
    assert len(target.fake.executions) == 0


def test_v8_context_for_long_sources() -> None:
    assert json_error('[1, 2, "some long value", x, 3, 4, 5]') == (
        'Unexpected token \'x\', ..."g value", x, 3, 4, 5"... is not valid JSON'
    )
    assert json_error('[x, "some long value", 3, 4, 5]') == (
        'Unexpected token \'x\', "[x, "some l"... is not valid JSON'
    )


@pytest.mark.parametrize(
    ("ctype", "body", "parsed"),
    [
        ("application/json; charset=utf-8", "{\"n\":\"Zoë ☃ 🎉\"}".encode(), {"n": "Zoë ☃ 🎉"}),
        ("application/x-www-form-urlencoded", b"a=1&a=2&b=%zz&c=x+y",
         {"a": ["1", "2"], "b": "%zz", "c": "x y"}),
        ("text/plain", b"hello", "hello"),
        ("application/xml",
         b"<Order id='7'><Item>a</Item><Item>b</Item><Note> x  y </Note></Order>",
         {"order": {"$": {"id": "7"}, "item": ["a", "b"], "note": "x y"}}),
        ("application/octet-stream", b"\x00\x01", {}),
        ("application/json; charset=latin1", b'{"n":"Zo\xeb"}', {"n": "Zoë"}),
    ],
)  # fmt: skip
async def test_bodies_are_parsed_per_content_type(
    target_factory: Make, ctype: str, body: bytes, parsed: Any
) -> None:
    target = target_factory(echo())
    r = await target.client.post("/webhook/echo", content=body, headers={"Content-Type": ctype})
    assert (r.status_code, r.json()) == (200, {"body": parsed})


async def test_non_ascii_text_is_echoed_as_utf8_and_lone_surrogates_escaped(
    target_factory: Make,
) -> None:
    target = target_factory(echo())
    body = '{"n":"Zoë","s":"\\ud800"}'
    r = await target.client.post(
        "/webhook/echo", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert r.content == '{"body":{"n":"Zoë","s":"\\ud800"}}'.encode()


@pytest.mark.parametrize(
    ("ctype", "body", "hint"),
    [
        ("application/json; charset=iso-8859-1", b"{}", "Unknown encoding: iso-8859-1"),
        ("text/xml", b"<a><b></a>", None),
    ],
)
async def test_other_unparsable_bodies_answer_422(
    target_factory: Make, ctype: str, body: bytes, hint: str | None
) -> None:
    target = target_factory(echo())
    r = await target.client.post("/webhook/echo", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 422
    assert r.json()["message"] == "Failed to parse request body"
    if hint is not None:
        assert r.json()["hint"] == hint


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_gzip_and_deflate_bodies_are_decompressed_and_a_plain_one_fails_as_in_n8n(
    target_factory: Make, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    target = target_factory(echo())
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    ok = await target.client.post("/webhook/echo", content=compress(b'{"a":1}'), headers=headers)
    plain = await target.client.post("/webhook/echo", content=b'{"a":1}', headers=headers)
    assert (ok.status_code, ok.json()) == (200, {"body": {"a": 1}})
    assert (plain.status_code, plain.content) == (500, PROBLEM)
    assert len(target.fake.executions) == 1


async def test_a_body_error_comes_before_the_auth_check(target_factory: Make) -> None:
    target = target_factory(FakeN8n())  # the samples: header auth
    r = await target.client.post(
        "/webhook/weekly-recap", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422


async def test_cors_preflight_and_allow_origin_on_answers(target_factory: Make) -> None:
    target = target_factory(echo())
    pre = await target.client.options(
        "/webhook/echo",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-tenant-id"},
    )  # fmt: skip
    assert (pre.status_code, pre.content) == (204, b"")
    assert {k: v for k, v in pre.headers.items() if k.startswith("access-control")} == {
        "access-control-allow-methods": "OPTIONS, POST",
        "access-control-allow-origin": "https://app.example",
        "access-control-max-age": "300",
        "access-control-allow-headers": "content-type,x-tenant-id",
    }
    post = await target.client.post("/webhook/echo", json={}, headers={"Origin": "https://o"})
    assert post.headers["access-control-allow-origin"] == "https://o"
    assert "access-control-max-age" not in post.headers
    bare = await target.client.options("/webhook/nope")
    assert (bare.status_code, bare.content) == (204, b"")
    assert "access-control-allow-methods" not in bare.headers
    assert "content-type" not in bare.headers


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        ("https://a.example,https://b.example", "https://b.example", "https://b.example"),
        ("https://a.example,https://b.example", "https://evil.example", "https://a.example"),
        ("https://a.example", "https://evil.example", "https://a.example"),
        ("*", "https://any.example", "https://any.example"),
    ],
)
async def test_allowed_origins_option(
    target_factory: Make, allowed: str, origin: str, expected: str
) -> None:
    target = target_factory(echo({"allowedOrigins": allowed}))
    r = await target.client.post("/webhook/echo", json={}, headers={"Origin": origin})
    assert r.headers["access-control-allow-origin"] == expected


async def test_unsupported_methods_and_the_bare_webhook_page(target_factory: Make) -> None:
    target = target_factory(echo())
    odd = await target.client.request("PROPFIND", "/webhook/echo")
    assert (odd.status_code, odd.json()) == (
        500,
        {"code": 0, "message": "The method PROPFIND is not supported."},
    )
    for path in ("/webhook/", "/webhook-test/"):
        page = await target.client.post(path, json={})
        assert page.status_code == 404
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == "default-src 'none'"
        assert f"<pre>Cannot POST {path}</pre>".encode() in page.content


async def test_control_api_takes_a_yaml_profile(target_factory: Make) -> None:
    target = target_factory(echo())
    yaml_body = "rules:\n  - path: echo\n    status: {503: 1.0}\n"
    put = await target.client.put("/__faults", content=yaml_body)
    assert put.status_code == 200
    assert (await target.client.post("/webhook/echo", json={})).status_code == 503
    bad = await target.client.put("/__faults", content="rules: [\n")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("PUT /__faults body: (body): not valid YAML at line")


def test_credentials_from_the_directory_export_separate_writes(tmp_path: Path) -> None:
    for i, (kind, data) in enumerate(
        [("httpHeaderAuth", {"name": "X-K", "value": "v"}), ("httpBasicAuth",
          {"user": "u", "password": "p"})]
    ):  # fmt: skip
        record = {"id": f"c{i}", "name": f"n{i}", "type": kind, "data": data}
        (tmp_path / f"c{i}.json").write_text(json.dumps(record))
    creds = load_credentials(tmp_path)
    assert [(c.id, c.type) for c in creds] == [("c0", "httpHeaderAuth"), ("c1", "httpBasicAuth")]


def respond_workflow(body: str) -> FakeN8n:
    nodes = [
        {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
         "parameters": {"httpMethod": "POST", "path": "r", "responseMode": "responseNode"}},
        {"name": "Respond", "type": "n8n-nodes-base.respondToWebhook", "typeVersion": 1.5,
         "parameters": {"respondWith": "json", "responseBody": body,
                        "options": {"responseCode": 202, "responseHeaders": {"entries": [
                            {"name": "X-Request-Key", "value": "={{ $json.body.k }}"}]}}}},
    ]  # fmt: skip
    connections = {"Webhook": {"main": [[{"node": "Respond", "type": "main", "index": 0}]]}}
    raw = {"name": "r", "active": True, "nodes": nodes, "connections": connections}
    return FakeN8n([parse_workflow(raw, source="r.json")])


async def test_respond_to_webhook_with_an_expression_body_code_and_headers(
    target_factory: Make,
) -> None:
    target = target_factory(
        respond_workflow('={{ { "got": $json.body.k, "n": [1, $json.body.n] } }}')
    )
    r = await target.client.post("/webhook/r", json={"k": "abc", "n": 2})
    assert (r.status_code, r.content) == (202, b'{"got":"abc","n":[1,2]}')
    assert r.headers["x-request-key"] == "abc"
    assert r.headers["content-type"] == "application/json; charset=utf-8"


async def test_respond_to_webhook_with_a_body_that_is_not_json_fails_the_run() -> None:
    fake = respond_workflow("={{ $json.body.text }}")
    async with fake.client() as client:
        r = await client.post("/webhook/r", json={"text": "{not json"})
    assert (r.status_code, r.content) == (500, b'{"message":"Error in workflow"}')
    (run,) = fake.executions
    assert (run.status, run.error) == ("error", "Respond: Invalid JSON in 'Response Body' field")


async def test_last_node_with_no_data_answers_an_empty_json_typed_body(
    target_factory: Make,
) -> None:
    raw = {"name": "n", "active": True, "connections": {}, "nodes": [
        {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
         "parameters": {"httpMethod": "POST", "path": "n", "responseMode": "lastNode",
                        "responseData": "noData"}}]}  # fmt: skip
    target = target_factory(FakeN8n([parse_workflow(raw, source="n.json")]))
    r = await target.client.post("/webhook/n", json={})
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"", "application/json")


async def test_runaway_nesting_is_refused_not_crashed(target_factory: Make) -> None:
    target = target_factory(echo())
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await target.client.post(
        "/webhook/echo", content=deep, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["hint"] == "Maximum call stack size exceeded"
