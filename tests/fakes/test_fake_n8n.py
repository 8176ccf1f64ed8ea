"""The fake n8n, run in-process and served: n8n's answers byte for byte, each fault, the
control API, and the same outcomes for the same seed either way."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness import vclock
from harness.fakes.faults import parse_profile
from harness.fakes.n8n import FakeN8n, FakeN8nServer, FakeRequest
from harness.fakes.n8n_export import Credential, Credentials, parse_workflow
from harness.vclock import VirtualClock

Target = Any  # tests/fakes/conftest.py: mode, fake, client, post()
Make = Callable[[FakeN8n], Any]
KEY = {"X-N8N-Webhook-Key": "local-test-webhook-key"}
NOT_REGISTERED = (
    b'{"code":404,"message":"The requested webhook \\"POST nope\\" is not registered.",'
    b'"hint":"The workflow must be active for a production URL to run successfully. You can '
    b"activate the workflow using the toggle in the top-right of the editor. Note that unlike "
    b"test URL calls, production URL calls aren't shown on the canvas (only in the executions "
    b'list)"}'
)


# --- n8n's answers, byte for byte (peers/n8n-webhooks.md) --------------------------------


async def test_on_received_answers_workflow_was_started(target: Target) -> None:
    r = await target.post("notify-gap-fill", json={"tenant_id": "t1"})
    assert r.status_code == 200
    assert r.content == b'{"message":"Workflow was started"}'
    assert r.headers["content-type"] == "application/json; charset=utf-8"


async def test_last_node_answers_all_entries_of_the_last_node(target: Target) -> None:
    r = await target.post("weekly-recap", json={})
    assert (r.status_code, r.content) == (
        200,
        b'[{"ok":true,"workflow":"weekly-recap","status":"processed"}]',
    )


@pytest.mark.parametrize(
    ("path", "first", "duplicate"),
    [
        ("notify-gap-fill", (200, b'{"message":"Workflow was started"}'), None),
        (
            "weekly-recap",
            (200, b'[{"ok":true,"workflow":"weekly-recap","status":"processed"}]'),
            (200, b"[]"),
        ),
        (
            "client-onboarding",
            (202, b'{"status":"accepted","workflow":"client-onboarding"}'),
            (200, b""),
        ),
    ],
)
async def test_the_samples_answer_a_duplicate_key_2xx_and_drop_it(
    target: Target, path: str, first: tuple[int, bytes], duplicate: tuple[int, bytes] | None
) -> None:
    # Remove Duplicates behind each sample webhook; each response mode answers a duplicate 2xx.
    # The answers (status, body, Content-Type) are those of n8n 2.8.4 with the same samples.
    answers, types = [], set()
    for key in ("k1", "k1", "k2"):
        r = await target.post(path, json={"idempotency_key": key})
        answers.append((r.status_code, r.content))
        types.add(r.headers["content-type"])
    assert answers == [first, duplicate or first, first]
    assert types == {"application/json; charset=utf-8"}  # as n8n 2.8.4 answers all three
    entries = target.fake.journal.entries()
    assert [(e.ran, e.dropped) for e in entries] == [(True, False), (True, True), (True, False)]
    assert target.fake.executions.effects() == {"k1": 1, "k2": 1}


async def test_respond_to_webhook_answers_its_code_and_body(target: Target) -> None:
    r = await target.post("client-onboarding", json={})
    assert (r.status_code, r.content) == (
        202,
        b'{"status":"accepted","workflow":"client-onboarding"}',
    )


async def test_unregistered_path_is_404_with_n8ns_hint(target: Target) -> None:
    r = await target.post("nope", json={})
    assert (r.status_code, r.content) == (404, NOT_REGISTERED)


async def test_wrong_method_is_404_naming_the_right_one(target: Target) -> None:
    r = await target.client.get("/webhook/weekly-recap", headers=KEY)
    assert r.status_code == 404
    assert r.content == (
        b'{"code":404,"message":"This webhook is not registered for GET requests. '
        b'Did you mean to make a POST request?"}'
    )


@pytest.mark.parametrize("headers", [{}, {"X-N8N-Webhook-Key": "wrong"}])
async def test_header_auth_missing_or_wrong_is_403_plain_text(
    target: Target, headers: dict[str, str]
) -> None:
    r = await target.client.post("/webhook/weekly-recap", headers=headers, json={})
    assert (r.status_code, r.content) == (403, b"Authorization data is wrong!")
    assert r.headers["www-authenticate"] == 'Basic realm="Webhook"'
    assert "content-type" not in r.headers


async def test_test_url_is_not_listening(target: Target) -> None:
    r = await target.client.post("/webhook-test/weekly-recap", json={})
    assert r.status_code == 404
    assert r.json() == {
        "code": 404,
        "message": 'The requested webhook "weekly-recap" is not registered.',
        "hint": "Click the 'Execute workflow' button on the canvas, then try again. (In test "
        "mode, the webhook only works for one call after you click this button)",
    }


async def test_healthz(target: Target) -> None:
    r = await target.client.get("/healthz")
    assert (r.status_code, r.content) == (200, b'{"status":"ok"}')


async def test_inactive_workflow_is_not_registered(target_factory: Make) -> None:
    wf = _workflow("off", active=False)
    t = target_factory(FakeN8n([wf]))
    r = await t.client.post("/webhook/off", json={})
    assert r.status_code == 404
    assert b'\\"POST off\\" is not registered' in r.content


async def test_basic_auth_401_then_403_then_ok(target_factory: Make) -> None:
    wf = _workflow("basic", auth="basicAuth")
    creds = Credentials(
        [Credential("c1", "basic creds", "httpBasicAuth", {"user": "u", "password": "p"})]
    )
    t = target_factory(FakeN8n([wf], credentials=creds))
    missing = await t.client.post("/webhook/basic")
    wrong = await t.client.post("/webhook/basic", auth=("u", "x"))
    right = await t.client.post("/webhook/basic", auth=("u", "p"))
    assert (missing.status_code, missing.content) == (401, b"Authorization is required!")
    assert (wrong.status_code, wrong.content) == (403, b"Authorization data is wrong!")
    assert missing.headers["www-authenticate"] == 'Basic realm="Webhook"'
    assert right.status_code == 200


async def test_stop_and_error_in_last_node_mode_is_500(target_factory: Make) -> None:
    wf = _workflow("boom", mode="lastNode", stop=True)
    t = target_factory(FakeN8n([wf]))
    r = await t.client.post("/webhook/boom", json={})
    assert (r.status_code, r.content) == (500, b'{"message":"Error in workflow"}')
    on_received = target_factory(FakeN8n([_workflow("boom2", stop=True)]))
    quiet = await on_received.client.post("/webhook/boom2", json={})
    assert quiet.status_code == 200  # the error is invisible to the caller in onReceived mode


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "retry_after"),
    [
        (500, b'{"message":"Error in workflow"}', None),
        (502, b'{"code":502,"message":"Bad Gateway"}', None),
        (503, b'{"code":503,"message":"Database is not ready!"}', "3"),
        (429, b'{"code":429,"message":"Too Many Requests"}', "3"),
    ],
)
async def test_status_faults(
    target_factory: Make, build: Any, status: int, body: bytes, retry_after: str | None
) -> None:
    t = target_factory(build({"rules": [{"status": {status: 1.0}, "retry_after": 2.5}]}))
    r = await t.post("weekly-recap", json={})
    assert (r.status_code, r.content, r.headers.get("retry-after")) == (status, body, retry_after)
    (entry,) = t.fake.journal.entries()
    assert (entry.fault, entry.status, entry.ran) == (f"status:{status}", status, False)


@pytest.mark.parametrize(
    ("kind", "error", "outcome"),
    [
        ("reset", httpx.ReadError, "reset"),
        ("close", httpx.RemoteProtocolError, "closed"),
        ("truncate", httpx.RemoteProtocolError, "truncated"),
    ],
)
async def test_connection_faults_raise_what_httpx_raises(
    target_factory: Make, build: Any, kind: str, error: type[Exception], outcome: str
) -> None:
    t = target_factory(build({"rules": [{"path": "weekly-recap", kind: 1.0}]}))
    with pytest.raises(error):
        await t.post("weekly-recap", json={})
    ok = await t.post("notify-gap-fill", json={})  # other paths and later calls unaffected
    assert ok.status_code == 200
    first = t.fake.journal.entries()[0]
    assert (first.outcome, first.fault, first.ran) == (outcome, kind, True)


async def test_truncated_body_names_the_byte_counts(target_factory: Make, build: Any) -> None:
    t = target_factory(build({"rules": [{"truncate": 1.0}]}))
    with pytest.raises(httpx.RemoteProtocolError, match=r"received 30 bytes, expected 60"):
        await t.post("weekly-recap", json={})


async def test_malformed_body_is_a_complete_answer_that_is_not_json(
    target_factory: Make, build: Any
) -> None:
    t = target_factory(build({"rules": [{"malformed": 1.0}]}))
    r = await t.post("weekly-recap", json={})
    assert (r.status_code, r.content) == (200, b'[{"ok":true,"workflow":"weekly')
    with pytest.raises(json.JSONDecodeError):
        r.json()


async def test_hang_outlasts_the_clients_timeout(target_factory: Make, build: Any) -> None:
    t = target_factory(build({"rules": [{"hang": 1.0, "hang_for": 30}]}))
    with pytest.raises(httpx.ReadTimeout):
        await t.post("weekly-recap", json={}, timeout=0.2)
    await _until(lambda: t.fake.journal.entries()[0].outcome == "hang")
    entry = t.fake.journal.entries()[0]
    assert entry.finished_t is not None
    assert entry.finished_t >= 0.2


async def test_run_before_fault_false_means_the_workflow_did_not_run(
    target_factory: Make, build: Any
) -> None:
    t = target_factory(build({"rules": [{"reset": 1.0, "run_before_fault": False}]}))
    with pytest.raises(httpx.ReadError):
        await t.post("weekly-recap", json={})
    assert t.fake.journal.entries()[0].ran is False


async def test_fail_first_then_pass_per_tenant(target_factory: Make, build: Any) -> None:
    t = target_factory(build({"rules": [{"fail_first": {"count": 2, "fault": 503}}]}))
    codes = [
        (await t.post("weekly-recap", json={}, headers={"X-Tenant-Id": tenant})).status_code
        for tenant in ("a", "a", "a", "b")
    ]
    assert codes == [503, 503, 200, 503]


async def test_tenant_from_body_and_idempotency_key_reach_the_journal(target: Target) -> None:
    await target.post(
        "notify-gap-fill", json={"tenant_id": "acme"}, headers={"Idempotency-Key": "k1"}
    )
    await target.post(
        "notify-gap-fill", json={}, headers={"X-Tenant-Id": "beta", "Idempotency-Key": "k1"}
    )
    entries = target.fake.journal.entries()
    assert [(e.tenant, e.idempotency_key, e.path) for e in entries] == [
        ("acme", "k1", "notify-gap-fill"),
        ("beta", "k1", "notify-gap-fill"),
    ]
    assert target.fake.journal.duplicates() == {"k1": 2}


# --- the same seed, the same outcomes, in both modes ---------------------------------------

MIX = {
    "rules": [
        {
            "path": "weekly-recap",
            "status": {500: 0.15, 502: 0.1, 503: 0.1, 429: 0.1},
            "reset": 0.1,
            "close": 0.1,
            "malformed": 0.1,
            "truncate": 0.05,
        }
    ],
    "seed": 1234,
}


async def _outcomes(t: Target, n: int, round_: int = 0) -> list[str]:
    seen = []
    for i in range(n):
        # A fresh key per call: the samples' Remove Duplicates history outlives a reset.
        body = {"tenant_id": f"t{i % 3}", "idempotency_key": f"r{round_}-{i}"}
        try:
            r = await t.post("weekly-recap", json=body)
            seen.append(f"{r.status_code}:{r.content.decode()}")
        except httpx.HTTPError as exc:
            seen.append(type(exc).__name__)
    return seen


async def test_same_seed_same_outcomes_in_both_modes(target_factory: Make, build: Any) -> None:
    # Each mode's run is compared with a fresh in-process reference run of the same seed.
    t = target_factory(build(MIX))
    got = await _outcomes(t, 60)
    reference = build(MIX)
    async with reference.client() as client:
        want = await _outcomes(_Ref(reference, client), 60)
    assert got == want
    assert len(set(got)) >= 6  # the mix really mixed
    await t.client.post("/__reset")
    assert await _outcomes(t, 60, round_=1) == want  # a reset replays the same sequence


class _Ref:
    def __init__(self, fake: FakeN8n, client: httpx.AsyncClient) -> None:
        self.fake, self.client = fake, client

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**KEY, **kwargs.pop("headers", {})}
        return await self.client.post(f"/webhook/{path}", headers=headers, **kwargs)


# --- the control API ------------------------------------------------------------------------


async def test_control_api_put_get_faults_journal_reset(target: Target) -> None:
    profile = {"rules": [{"path": "weekly-recap", "status": {"503": 1.0}}]}
    put = await target.client.put("/__faults", json=profile)
    assert put.status_code == 200
    got = (await target.client.get("/__faults")).json()
    assert got["rules"][0]["status"] == {"503": 1.0}
    assert (await target.post("weekly-recap", json={})).status_code == 503
    assert (await target.post("notify-gap-fill", json={})).status_code == 200
    journal = (await target.client.get("/__journal", params={"bucket": 60})).json()
    assert [e["fault"] for e in journal["entries"]] == ["status:503", None]
    assert journal["counts_by_tenant"] == {"": 2}
    assert journal["arrivals"] == {"0": 2}
    assert (await target.client.post("/__reset")).json() == {"status": "reset"}
    assert (await target.client.get("/__journal")).json()["entries"] == []
    assert (await target.client.get("/__faults")).json() == {"rules": []}
    assert (await target.post("weekly-recap", json={})).status_code == 200


async def test_control_api_refuses_a_bad_profile_naming_the_key(target: Target) -> None:
    r = await target.client.put("/__faults", json={"rules": [{"status": {"503": 1.5}}]})
    assert r.status_code == 400
    assert r.json()["error"] == (
        "PUT /__faults body: rules[0].status.503: probability 1.5 is outside 0..1"
    )
    assert (await target.client.get("/__faults")).json() == {"rules": []}  # unchanged
    assert (await target.client.delete("/__faults")).status_code == 405


# --- only the real server: a real RST, a real hang ------------------------------------------


def test_served_reset_is_a_tcp_rst_and_hang_holds_the_socket(build: Any) -> None:
    fake = build(
        {
            "rules": [
                {"path": "weekly-recap", "reset": 1.0},
                {"path": "notify-gap-fill", "hang": 1.0},
            ]
        }
    )
    with FakeN8nServer(fake) as server:
        request = (
            b"POST /webhook/weekly-recap HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"X-N8N-Webhook-Key: local-test-webhook-key\r\n\r\n{}"
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request)
            with pytest.raises(ConnectionResetError):
                sock.recv(1024)
        hang = request.replace(b"weekly-recap", b"notify-gap-fill")
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.3) as sock:
            sock.sendall(hang)
            with pytest.raises(TimeoutError):
                sock.recv(1024)  # nothing comes back while the hang holds
            assert fake.journal.in_flight() == {"": 1}
    # stop() released the hang and shut down; nothing is left in flight
    assert fake.journal.in_flight() == {}


def test_server_binds_a_chosen_port_and_refuses_a_busy_one(build: Any) -> None:
    with FakeN8nServer(build()) as first:
        with pytest.raises(OSError):
            FakeN8nServer(build(), port=first.port).start()
        response = httpx.get(f"{first.base_url}/healthz")
        assert response.json() == {"status": "ok"}


# --- the in-process transport on virtual time -----------------------------------------------


def test_latency_and_hang_run_on_the_virtual_clock() -> None:
    profile = parse_profile(
        {
            "rules": [
                {"path": "weekly-recap", "latency": {"fixed": 5}},
                {"hang": 1.0, "hang_for": 3600},
            ]
        }
    )

    async def main(clock: VirtualClock) -> list[float]:
        fake = FakeN8n(faults=profile, clock=clock)
        marks = [clock.monotonic()]
        async with fake.client(headers=KEY) as client:
            r = await client.post("/webhook/weekly-recap", json={})
            assert r.status_code == 200
            marks.append(clock.monotonic())
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/webhook/notify-gap-fill", json={}, timeout=120.0)
            marks.append(clock.monotonic())
            with pytest.raises(httpx.RemoteProtocolError):  # no client timeout: n8n gives up
                await client.post("/webhook/notify-gap-fill", json={}, timeout=None)
            marks.append(clock.monotonic())
        return [b - a for a, b in itertools.pairwise(marks)]

    assert vclock.run(main) == pytest.approx([5.0, 120.0, 3600.0])


def test_peak_in_flight_per_tenant_under_concurrency() -> None:
    profile = parse_profile({"rules": [{"latency": {"uniform": {"min": 1, "max": 2}}}]})

    async def main(clock: VirtualClock) -> FakeN8n:
        fake = FakeN8n(faults=profile, clock=clock, seed=3)
        async with fake.client(headers=KEY) as client:
            calls = [
                client.post("/webhook/notify-gap-fill", json={}, headers={"X-Tenant-Id": tenant})
                for tenant in ["a"] * 4 + ["b"] * 2
            ]
            await asyncio.gather(*calls)
        return fake

    fake = vclock.run(main)
    assert fake.journal.peak_in_flight() == {"a": 4, "b": 2}
    assert fake.journal.counts_by_tenant() == {"a": 4, "b": 2}
    assert all(1.0 <= e.latency <= 2.0 for e in fake.journal.entries())


async def test_core_answer_for_a_non_webhook_path() -> None:
    fake = FakeN8n()
    answer = await fake.answer(FakeRequest("GET", "/rest/workflows"))
    assert answer.status == 404  # Express's final handler: an HTML page
    assert b"<pre>Cannot GET /rest/workflows</pre>" in answer.body


# --- helpers ---------------------------------------------------------------------------------


def _workflow(
    path: str,
    *,
    active: bool = True,
    auth: str = "none",
    mode: str = "onReceived",
    stop: bool = False,
) -> Any:
    webhook: dict[str, Any] = {
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "parameters": {
            "httpMethod": "POST",
            "path": path,
            "authentication": auth,
            "responseMode": mode,
        },
    }
    if auth == "basicAuth":
        webhook["credentials"] = {"httpBasicAuth": {"id": "c1", "name": "basic creds"}}
    nodes = [webhook]
    connections: dict[str, Any] = {}
    if stop:
        nodes.append(
            {
                "name": "Stop",
                "type": "n8n-nodes-base.stopAndError",
                "typeVersion": 1,
                "parameters": {"errorMessage": "no"},
            }
        )
        connections["Webhook"] = {"main": [[{"node": "Stop", "type": "main", "index": 0}]]}
    raw = {"name": path, "active": active, "nodes": nodes, "connections": connections}
    return parse_workflow(raw, source=f"{path}.json")


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition set by the server thread, bounded (an event would need a hook)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("fault", [None, "hang"])
def test_a_caller_that_cancels_ends_its_call_and_the_workflow_still_runs(
    fault: str | None,
) -> None:
    """A caller's own deadline (the dispatcher's total deadline) cancels a slow call: the
    journal ends the call then, so it no longer counts as in flight (found by the swarm: the
    entry stayed pending forever). The workflow still runs, as n8n's would."""
    rule: dict[str, Any] = {"latency": {"fixed": 30.0}}
    if fault == "hang":
        rule = {"hang": 1.0, "hang_for": 600.0}
    profile = parse_profile({"rules": [rule]})

    async def main(clock: VirtualClock) -> FakeN8n:
        fake = FakeN8n(faults=profile, clock=clock)
        async with fake.client(headers=KEY) as client:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(5.0):
                    await client.post("/webhook/weekly-recap", json={}, timeout=None)
        return fake

    fake = vclock.run(main)
    (entry,) = fake.journal.entries()
    assert entry.outcome == ("hang" if fault else "gave_up")
    assert entry.latency == pytest.approx(0.0 if fault else 5.0)
    assert entry.ran  # a hang runs the workflow before it holds the call (run_before_fault)
    assert len(list(fake.executions)) == 1
    assert fake.journal.to_json()["in_flight"] == {}
