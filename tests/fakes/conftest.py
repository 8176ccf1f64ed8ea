"""One suite, two ways to run the fake: the `target` fixture gives each test an httpx client on
the in-process transport and on a real uvicorn server, with fakes built the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness.fakes.faults import parse_profile
from harness.fakes.n8n import FakeN8n, FakeN8nServer

WEBHOOK_KEY = {"X-N8N-Webhook-Key": "local-test-webhook-key"}


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


@pytest.fixture(params=["inprocess", "server"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def target_factory(mode: str) -> AsyncIterator[Callable[[FakeN8n], Any]]:
    """Call with a fake; get a `Target` in this test's mode (servers stopped afterwards)."""
    servers: list[FakeN8nServer] = []
    clients: list[httpx.AsyncClient] = []

    def make(fake: FakeN8n) -> Target:
        if mode == "inprocess":
            client = fake.client()
        else:
            server = FakeN8nServer(fake).start()
            servers.append(server)
            client = httpx.AsyncClient(base_url=server.base_url)
        clients.append(client)
        return Target(mode, fake, client)

    yield make
    for client in clients:
        await client.aclose()
    for server in servers:
        server.stop()


@pytest.fixture
def target(target_factory: Callable[[FakeN8n], Target]) -> Target:
    return target_factory(build_fake())
