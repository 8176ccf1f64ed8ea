"""The fake n8n as a respx route: the same fake as through its transport, for clients the code
under test makes itself (the contract suite also runs through it: tests/fakes/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from harness import vclock
from harness.fakes.faults import parse_profile
from harness.fakes.n8n import FakeN8n
from harness.fakes.respx_routes import n8n_root, route_fake_n8n
from harness.vclock import ManualClock, VirtualClock

KEY = {"X-N8N-Webhook-Key": "local-test-webhook-key"}
URL = "https://n8n.example.test/webhook"

PROFILE = {
    "rules": [
        {"path": "weekly-recap", "fail_first": {"count": 2, "fault": 503}},
        {
            "path": "notify-gap-fill",
            "latency": {"uniform": {"min": 0.5, "max": 4}},
            "status": {500: 0.2, 429: 0.1},
            "reset": 0.1,
            "close": 0.1,
            "malformed": 0.1,
            "truncate": 0.1,
        },
        {"path": "client-onboarding", "hang": 1.0, "hang_for": 90},
    ],
}

# Each call: (method, path, tenant, timeout); the same list through every way in.
CALLS = [
    ("POST", "webhook/weekly-recap", "acme", 5.0),
    ("POST", "webhook/weekly-recap", "acme", 5.0),
    ("POST", "webhook/weekly-recap", "acme", 5.0),
    *[("POST", "webhook/notify-gap-fill", f"t{i % 3}", 5.0) for i in range(30)],
    ("POST", "webhook/client-onboarding", "acme", 30.0),
    ("POST", "webhook/client-onboarding", "beta", None),
    ("GET", "webhook/weekly-recap", "acme", 5.0),
]


def _record(call: Callable[[], Any]) -> str:
    try:
        response = call()
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return f"{response.status_code}:{response.content!r}"


async def _through(client: httpx.AsyncClient, base: str) -> list[str]:
    seen = []
    for method, path, tenant, timeout in CALLS:
        body = {"tenant_id": tenant} if method == "POST" else None
        request = client.request(method, f"{base}/{path}", json=body, headers=KEY, timeout=timeout)
        try:
            response = await request
            seen.append(f"{response.status_code}:{response.content!r}")
        except httpx.HTTPError as exc:
            seen.append(type(exc).__name__)
    return seen


def _sync_through(client: httpx.Client, base: str) -> list[str]:
    seen = []
    for method, path, tenant, timeout in CALLS:
        body = {"tenant_id": tenant} if method == "POST" else None
        seen.append(
            _record(
                lambda m=method, p=path, b=body, t=timeout: client.request(
                    m, f"{base}/{p}", json=b, headers=KEY, timeout=t
                )
            )
        )
    return seen


def _journal_via(way: str) -> tuple[list[str], dict[str, Any], float]:
    """Run CALLS on virtual time through `way`; the answers, the journal and the time taken."""

    async def main(clock: VirtualClock) -> tuple[list[str], dict[str, Any], float]:
        fake = FakeN8n(faults=parse_profile(PROFILE, source="test"), clock=clock, seed=11)
        if way == "transport":
            async with fake.client() as client:
                seen = await _through(client, "")
        else:
            with respx.mock(assert_all_called=False) as router:
                route_fake_n8n(router, fake, URL)
                if way == "respx":
                    async with httpx.AsyncClient() as client:
                        seen = await _through(client, "https://n8n.example.test")
                else:
                    with httpx.Client() as sync:
                        seen = _sync_through(sync, "https://n8n.example.test")
        return seen, fake.journal.to_json(bucket=10), clock.elapsed()

    return vclock.run(main)


def test_respx_route_and_transport_give_identical_journals() -> None:
    want = _journal_via("transport")
    answers, journal, elapsed = want
    assert len(journal["entries"]) == len(CALLS)
    assert len(set(answers)) >= 6  # the profile really mixed answers and errors
    assert {"ReadTimeout", "RemoteProtocolError", "ReadError"} <= set(answers)
    assert elapsed > 90  # latencies and hangs took virtual time
    assert _journal_via("respx") == want
    assert _journal_via("respx-sync") == want  # blocking waits move virtual time the same


def test_a_sync_client_blocks_virtual_time_as_a_slow_server_would() -> None:
    profile = parse_profile({"rules": [{"latency": {"fixed": 30}}]}, source="test")

    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        fake = FakeN8n(faults=profile, clock=clock)
        events: list[tuple[str, float]] = []

        async def timer() -> None:
            await asyncio.sleep(10)
            events.append(("timer", clock.elapsed()))

        with respx.mock(assert_all_called=False) as router:
            route_fake_n8n(router, fake, URL)
            task = asyncio.create_task(timer())
            await asyncio.sleep(0)  # the timer is armed
            jumps = clock.loop.jumps
            # A sync client on the loop's thread blocks it: bad practice, but code does it.
            with httpx.Client(headers=KEY) as client:
                r = client.post(f"{URL}/weekly-recap", json={})  # noqa: ASYNC212
            events.append((f"answer {r.status_code}", clock.elapsed()))
            assert clock.loop.jumps == jumps  # time moved without the loop jumping
            await task
        return events

    # The timer was due at 10 s but the loop was blocked until 30 s: it runs late, as for real.
    assert vclock.run(main) == [("answer 200", 30.0), ("timer", 30.0)]


def test_a_manual_clock_advances_for_a_sync_client() -> None:
    clock = ManualClock()
    fake = FakeN8n(
        faults=parse_profile({"rules": [{"latency": {"fixed": 2}}]}, source="t"), clock=clock
    )
    with respx.mock(assert_all_called=False) as router:
        route_fake_n8n(router, fake, URL)
        r = httpx.post(f"{URL}/weekly-recap", json={}, headers=KEY)
    assert (r.status_code, clock.monotonic()) == (200, 2.0)


def test_the_route_composes_with_the_users_own_routes() -> None:
    fake = FakeN8n()
    with respx.mock(assert_all_called=False) as router:
        api = router.get("https://api.example.test/users/1").respond(json={"id": 1})
        route = route_fake_n8n(router, fake, "https://n8n.example.test/n8n/webhook")
        other = httpx.get("https://api.example.test/users/1")
        hook = httpx.post("https://n8n.example.test/n8n/webhook/weekly-recap", json={}, headers=KEY)
        health = httpx.get("https://n8n.example.test/n8n/healthz")
        # Not under the fake's root: nobody routed it, so respx refuses it.
        with pytest.raises(respx.models.AllMockedAssertionError):
            httpx.get("https://n8n.example.test/n8nx/healthz")
        with pytest.raises(respx.models.AllMockedAssertionError):
            httpx.get("http://n8n.example.test/n8n/healthz")  # another scheme and port
    assert (other.json(), api.call_count) == ({"id": 1}, 1)
    assert (hook.status_code, health.json(), route.call_count) == (200, {"status": "ok"}, 2)
    assert [e.path for e in fake.journal.entries()] == ["weekly-recap"]


def test_errors_name_the_request_the_client_sent() -> None:
    fake = FakeN8n(faults=parse_profile({"rules": [{"reset": 1.0}]}, source="t"))
    sent = "https://n8n.example.test/under/webhook/weekly-recap"
    with respx.mock(assert_all_called=False) as router:
        route_fake_n8n(router, fake, "https://n8n.example.test/under/webhook")
        with pytest.raises(httpx.ReadError) as info:
            httpx.post(sent, json={}, headers=KEY)
    assert str(info.value.request.url) == sent


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://n8n:5678/webhook", "http://n8n:5678/"),
        ("https://n8n.example.com/webhook/", "https://n8n.example.com/"),
        ("https://example.com/tools/n8n/webhook", "https://example.com/tools/n8n"),
        ("https://example.com/tools/n8n", "https://example.com/tools/n8n"),
        ("http://fake-n8n.invalid", "http://fake-n8n.invalid/"),
        ("http://n8n:80/webhook?x=1", "http://n8n/"),
    ],
)
def test_n8n_root_of_a_webhook_url(url: str, root: str) -> None:
    assert str(n8n_root(url)) == root


@pytest.mark.parametrize("url", ["n8n.example.com/webhook", "ftp://n8n/webhook", "/webhook"])
def test_n8n_root_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        n8n_root(url)


def test_async_clients_wait_concurrently_on_the_virtual_clock() -> None:
    profile = parse_profile({"rules": [{"latency": {"fixed": 60}}]}, source="test")

    async def main(clock: VirtualClock) -> tuple[float, dict[str, int]]:
        fake = FakeN8n(faults=profile, clock=clock)
        with respx.mock(assert_all_called=False) as router:
            route_fake_n8n(router, fake, URL)
            async with httpx.AsyncClient(headers=KEY) as client:
                calls = [client.post(f"{URL}/weekly-recap", json={}) for _ in range(5)]
                answers = await asyncio.gather(*calls)
        assert [r.status_code for r in answers] == [200] * 5
        return clock.elapsed(), fake.journal.peak_in_flight()

    assert vclock.run(main) == (60.0, {"": 5})  # five minutes of latency in one minute
