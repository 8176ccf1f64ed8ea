"""pytest fixtures for the fakes, configured with markers:

    @pytest.mark.faults({"rules": [{"path": "weekly-recap", "status": {503: 0.5}}]})
    @pytest.mark.workflows("n8n/workflows", credentials="creds.json", lenient=False)
    @pytest.mark.seed(7)
    async def test_retries(fake_n8n: FakeN8n) -> None:
        async with fake_n8n.client() as client:
            ...

`fake_n8n` runs in-process (`.transport`, `.journal`, `.faults`, `.base_url`, `.client()`) and
sleeps on `virtual_clock` when the test uses that fixture, else on the real clock.
`fake_n8n_server` is the same fake served by uvicorn on an ephemeral 127.0.0.1 port for the
test's duration. `fake_stripe` builds, signs and delivers events. `faults` takes a mapping, a
`FaultProfile` or a YAML/JSON path; `workflows` one or more export paths (default: the sample
workflows with their header-auth credential, `DEFAULT_CREDENTIALS`). For code that makes its
own httpx client, `fake_n8n_respx` (`harness.testing.respx_fixtures`) is the same fake through
respx.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.fakes.faults import FaultProfile, load_profile, parse_profile
from harness.fakes.n8n import FakeN8n, FakeN8nServer
from harness.fakes.stripe import FakeStripe
from reliability.clock import Clock, SystemClock

__all__ = ["fake_n8n", "fake_n8n_server", "fake_stripe"]


def _seed(request: pytest.FixtureRequest) -> int:
    marker = request.node.get_closest_marker("seed")
    if marker is None:
        return 0
    if len(marker.args) != 1 or not isinstance(marker.args[0], int):
        raise pytest.UsageError(f"{request.node.nodeid}: use @pytest.mark.seed(<int>)")
    seed: int = marker.args[0]
    return seed


def _profile(request: pytest.FixtureRequest) -> FaultProfile | None:
    marker = request.node.get_closest_marker("faults")
    if marker is None:
        return None
    if len(marker.args) != 1:
        raise pytest.UsageError(f"{request.node.nodeid}: use @pytest.mark.faults(<profile>)")
    given = marker.args[0]
    if isinstance(given, FaultProfile):
        return given
    if isinstance(given, Mapping):
        return parse_profile(given, source=f"@pytest.mark.faults on {request.node.nodeid}")
    if isinstance(given, str | Path):
        return load_profile(given)
    raise pytest.UsageError(
        f"{request.node.nodeid}: @pytest.mark.faults takes a mapping, a FaultProfile or a path"
    )


def fake_clock(request: pytest.FixtureRequest) -> Clock:
    """The clock the test's fakes run on: `virtual_clock` when the test uses it, else real."""
    if "virtual_clock" in request.fixturenames:
        clock: Clock = request.getfixturevalue("virtual_clock")
        return clock
    return SystemClock()


def build_fake(request: pytest.FixtureRequest, clock: Clock) -> FakeN8n:
    """The test's fake n8n on `clock`, from its `workflows`, `faults` and `seed` markers."""
    marker = request.node.get_closest_marker("workflows")
    kwargs: dict[str, Any] = {}
    paths: Any = None
    if marker is not None:
        if not marker.args:
            raise pytest.UsageError(f"{request.node.nodeid}: use @pytest.mark.workflows(path, ...)")
        paths = list(marker.args)
        kwargs = dict(marker.kwargs)
        unknown = set(kwargs) - {"credentials", "lenient", "active"}
        if unknown:
            raise pytest.UsageError(
                f"{request.node.nodeid}: @pytest.mark.workflows: unknown {sorted(unknown)} "
                "(known: credentials, lenient, active)"
            )
    return FakeN8n.from_files(
        paths, faults=_profile(request), clock=clock, seed=_seed(request), **kwargs
    )


@pytest.fixture
def fake_n8n(request: pytest.FixtureRequest) -> Iterator[FakeN8n]:
    """An in-process fake n8n; use `.client()` or `httpx.AsyncClient(transport=.transport)`."""
    fake = build_fake(request, fake_clock(request))
    yield fake
    fake.release_hangs()


@pytest.fixture
def fake_n8n_server(request: pytest.FixtureRequest) -> Iterator[FakeN8nServer]:
    """The fake n8n served by uvicorn on 127.0.0.1, an ephemeral port (`.base_url`)."""
    fake = build_fake(request, SystemClock())
    with FakeN8nServer(fake) as server:
        yield server


@pytest.fixture
def fake_stripe(request: pytest.FixtureRequest) -> FakeStripe:
    """A seeded fake Stripe on the test's clock (`virtual_clock` when the test uses it)."""
    return FakeStripe(clock=fake_clock(request), seed=_seed(request))
