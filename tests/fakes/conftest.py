"""One suite, four ways to reach the fake: the `target` fixture gives each test an httpx client
on the in-process transport, on a real uvicorn server, and through a respx route (the client's
own transport intercepted), from an async and from a sync client, with fakes built the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx

from harness.fakes.faults import parse_profile
from harness.fakes.n8n import FakeN8n, FakeN8nServer
from harness.fakes.respx_routes import route_fake_n8n

WEBHOOK_KEY = {"X-N8N-Webhook-Key": "local-test-webhook-key"}
RESPX_URL = "https://n8n.example.test/under/a/prefix/webhook"
"""Where the respx modes route the fake: the client's base URL is its parent."""


@dataclass
class Target:
    """A fake and a client that reaches it, in one of the two modes."""

    mode: str
    fake: FakeN8n
    client: httpx.AsyncClient

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**WEBHOOK_KEY, **kwargs.pop("headers", {})}
        return await self.client.post(f"/webhook/{path}", headers=headers, **kwargs)


def build_fake(profile: dict[str, Any] | None = None, *, seed: int = 0) -> FakeN8n:
    faults = parse_profile(profile, source="test") if profile is not None else None
    return FakeN8n(faults=faults, seed=seed)


@pytest.fixture
def build() -> Callable[..., FakeN8n]:
    """`build(profile=None, seed=0)`: a fake with the sample workflows and that fault profile."""
    return build_fake


class SyncBridge(httpx.AsyncBaseTransport):
    """Sends each request of an async client through a sync `httpx.Client`: the suite's async
    tests then exercise what a sync client of the code under test gets."""

    def __init__(self) -> None:
        self.client = httpx.Client()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sync = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=await request.aread(),
            extensions=request.extensions,
        )
        response = self.client.send(sync)
        return httpx.Response(response.status_code, headers=response.headers,
                              content=response.content)  # fmt: skip

    async def aclose(self) -> None:
        self.client.close()


@pytest.fixture(params=["inprocess", "server", "respx", "respx-sync"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def target_factory(mode: str) -> AsyncIterator[Callable[[FakeN8n], Any]]:
    """Call with a fake; get a `Target` in this test's mode (servers stopped afterwards)."""
    servers: list[FakeN8nServer] = []
    clients: list[httpx.AsyncClient] = []
    router = respx.mock(assert_all_called=False)

    def make(fake: FakeN8n) -> Target:
        if mode == "inprocess":
            client = fake.client()
        elif mode.startswith("respx"):
            route_fake_n8n(router, fake, RESPX_URL, name=f"fake-{len(clients)}")
            base = RESPX_URL.removesuffix("/webhook")
            bridge = SyncBridge() if mode == "respx-sync" else None
            client = httpx.AsyncClient(base_url=base, transport=bridge)
        else:
            server = FakeN8nServer(fake).start()
            servers.append(server)
            client = httpx.AsyncClient(base_url=server.base_url)
        clients.append(client)
        return Target(mode, fake, client)

    with router if mode.startswith("respx") else contextlib.nullcontext():
        yield make
    for client in clients:
        await client.aclose()
    for server in servers:
        server.stop()


@pytest.fixture
def target(target_factory: Callable[[FakeN8n], Target]) -> Target:
    return target_factory(build_fake())
