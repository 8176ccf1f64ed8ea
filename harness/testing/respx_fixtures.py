"""pytest fixtures for code that makes its own httpx clients: the fake n8n as a respx route.

    @pytest.fixture
    def n8n_webhook_url() -> str:  # or set N8N_WEBHOOK_URL in the tests' environment
        return "https://n8n.example.com/webhook"

    @pytest.mark.faults({"rules": [{"path": "weekly-recap", "fail_first": {"count": 2}}]})
    async def test_my_code(fake_n8n_respx: FakeN8n, virtual_clock: VirtualClock) -> None:
        await my_code()  # builds its own httpx.AsyncClient for the URL above
        assert fake_n8n_respx.journal.counts_by_tenant() == {"acme": 3}

`fake_n8n_respx` is the fake of the `fake_n8n` fixture (same markers, on `virtual_clock` when
the test uses it) answering every request under `n8n_webhook_url` through respx, sync and async
clients alike, for the test's duration. It adds its route to respx's own `respx_mock` router, so
a test that also asks for `respx_mock` mocks other hosts beside it, with respx's settings (by
default a request nobody routed fails as not mocked; `respx_mock.route().pass_through()` lets
the rest reach the network). respx is needed only here: without it, the tests that use this
fixture fail naming the extra to install, and nothing else changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import pytest

from harness.fakes.n8n import FakeN8n
from harness.testing.fakes import build_fake, fake_clock

if TYPE_CHECKING:
    import respx

__all__ = ["fake_n8n_respx", "n8n_webhook_url"]

_ROUTE: Final = "fake_n8n_respx"
_MISSING: Final = (
    "the fake_n8n_respx fixture needs respx, which is not installed: "
    "pip install 'reliability-harness[respx]'"
)


@pytest.fixture
def n8n_webhook_url() -> str:
    """Where `fake_n8n_respx` answers: `N8N_WEBHOOK_URL` from the environment when set, else
    the fake's own `http://fake-n8n.invalid/webhook`. Override it to name another."""
    return os.environ.get("N8N_WEBHOOK_URL") or f"{FakeN8n.base_url}/webhook"


@pytest.fixture
def fake_n8n_respx(request: pytest.FixtureRequest, n8n_webhook_url: str) -> Iterator[FakeN8n]:
    """A fake n8n answering every request under `n8n_webhook_url`, through respx."""
    if importlib.util.find_spec("respx") is None:
        pytest.fail(_MISSING, pytrace=False)
    from harness.fakes.respx_routes import route_fake_n8n

    fake = build_fake(request, fake_clock(request))
    with _router(request) as router:
        route_fake_n8n(router, fake, n8n_webhook_url, name=_ROUTE)
        try:
            yield fake
        finally:
            # Unused, our route must not fail respx's "all routes called" check.
            router.pop(_ROUTE, None)
            fake.release_hangs()


@contextlib.contextmanager
def _router(request: pytest.FixtureRequest) -> Iterator[respx.Router]:
    """respx's `respx_mock` router, shared with the test; our own where that plugin is off."""
    try:
        shared: respx.MockRouter = request.getfixturevalue("respx_mock")
    except pytest.FixtureLookupError:
        import respx

        with respx.mock(assert_all_called=False) as own:
            yield own
        return
    yield shared
