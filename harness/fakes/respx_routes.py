"""The fake n8n as a respx route, for code that makes its own httpx clients.

    import respx
    from harness.fakes.n8n import FakeN8n
    from harness.fakes.respx_routes import route_fake_n8n

    fake = FakeN8n()
    with respx.mock(assert_all_called=False) as router:
        route_fake_n8n(router, fake, "https://n8n.example.com/webhook")
        httpx.post("https://n8n.example.com/webhook/weekly-recap", ...)  # answered by the fake

Every request under the URL goes into the fake through its own httpx transport, so workflows,
faults, the journal and the control API (`/__faults`, `/__journal`, `/__reset`) behave exactly
as through `fake.transport`. Other requests are left to the router's other routes.

Async clients are answered on the fake's clock: latency and hangs sleep on `virtual_clock`
when the fake runs on it. A sync `httpx.Client` cannot yield, so there the same waits block
the calling thread as a slow server would: for real on a real clock, and on a virtual clock
by moving virtual time at once (`VirtualEventLoop.block`), from whichever thread calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Coroutine, Iterator
from datetime import datetime
from typing import Any, Final, TypeVar

import httpx

from harness.fakes.n8n import FakeN8n, FakeN8nTransport
from harness.vclock import VirtualClock
from reliability.clock import Clock, SystemClock

try:
    import respx
except ImportError as exc:  # the plugin imports this module only when a test asks for it
    raise ImportError(
        "harness.fakes.respx_routes needs respx, which is not installed: "
        "pip install 'reliability-harness[respx]'"
    ) from exc

__all__ = ["FakeN8nHandler", "n8n_root", "route_fake_n8n"]

_WEBHOOK_SUFFIX: Final = "/webhook"
_T = TypeVar("_T")


def n8n_root(url: str | httpx.URL) -> httpx.URL:
    """The fake's root for `url`: a webhook URL as `N8N_WEBHOOK_URL` holds it (path ending in
    `/webhook`) stands for its parent; any other URL is the root itself."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"the fake n8n's URL must be an absolute http(s) URL, got {str(url)!r}")
    path = parsed.path.rstrip("/")
    if path.endswith(_WEBHOOK_SUFFIX):
        path = path[: -len(_WEBHOOK_SUFFIX)]
    return parsed.copy_with(path=path or "/", query=None, fragment=None)


def route_fake_n8n(
    router: respx.Router,
    fake: FakeN8n,
    url: str | httpx.URL = FakeN8n.base_url,
    *,
    name: str | None = "fake-n8n",
) -> respx.Route:
    """Route every request under `url` (see `n8n_root`) on `router` into `fake`.

    Returns the route (its `.calls` are respx's record). A route of the same `name` on the
    router is replaced; with several fakes, give each its own name.
    """
    root = n8n_root(url)
    prefix = root.path.rstrip("/")
    lookups: dict[str, Any] = {
        "scheme": root.scheme,
        "host": root.host,
        "port": root.port or (443 if root.scheme == "https" else 80),
    }
    if prefix:
        lookups["path__regex"] = rf"^{re.escape(prefix)}(?:/|$)"
    route = router.route(name=name, **lookups)
    route.side_effect = FakeN8nHandler(fake, prefix=prefix)
    return route


class FakeN8nHandler:
    """A respx side effect answering with `fake`, for async and sync clients alike.

    `prefix` is the path the fake's root sits under, taken off before the fake sees the path.
    """

    def __init__(self, fake: FakeN8n, *, prefix: str = "") -> None:
        self.fake = fake
        self.prefix = prefix.rstrip("/")
        # Sync callers share the fake's state through a view whose sleeps block instead.
        view = copy.copy(fake)
        view.clock = _Blocking(fake.clock)
        self._sync = FakeN8nTransport(view)

    def __call__(self, request: httpx.Request) -> httpx.Response | Coroutine[Any, Any, Any]:
        inner = self._for_fake(request)
        if _async_caller():
            return self._answer_async(request, inner)
        return self._answer_sync(request, inner)

    async def _answer_async(self, outer: httpx.Request, inner: httpx.Request) -> httpx.Response:
        with _as_sent(outer, inner):
            return await self.fake.transport.handle_async_request(inner)

    def _answer_sync(self, outer: httpx.Request, inner: httpx.Request) -> httpx.Response:
        with _as_sent(outer, inner):
            response = _drive(self._sync.handle_async_request(inner))
        stream = response.stream
        if isinstance(stream, httpx.SyncByteStream):
            return response
        assert isinstance(stream, AsyncIterable)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_SyncStream(stream),
            request=outer,
        )

    def _for_fake(self, request: httpx.Request) -> httpx.Request:
        """The request as the fake's own root would receive it."""
        if not self.prefix:
            return request
        path = request.url.path[len(self.prefix) :] or "/"
        return httpx.Request(
            request.method,
            request.url.copy_with(path=path),
            headers=request.headers,
            content=request.content,
            extensions=request.extensions,
        )


@contextlib.contextmanager
def _as_sent(outer: httpx.Request, inner: httpx.Request) -> Iterator[None]:
    """Transport errors raised for the rewritten request name the request the client sent."""
    try:
        yield
    except httpx.RequestError as exc:
        if outer is not inner:
            exc.request = outer
        raise


def _async_caller() -> bool:
    """Whether respx asks from its async path (and will await what we return).

    respx calls a side effect the same way from `Router.resolve` and `Router.aresolve`, and
    the request looks the same after its body is read; only the caller tells them apart. A
    sync client on the event loop's own thread (blocking it) is thereby still answered sync.
    """
    frame = sys._getframe(1)
    for _ in range(12):
        if frame.f_code is _ARESOLVE:
            return True
        if frame.f_code is _RESOLVE:
            return False
        if frame.f_back is None:
            break
        frame = frame.f_back
    # Called outside respx's resolver (directly, or a respx whose layout changed).
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_RESOLVE: Final = respx.Router.resolve.__code__
_ARESOLVE: Final = respx.Router.aresolve.__code__


def _drive(awaitable: Awaitable[_T]) -> _T:
    """Run an awaitable that never suspends to its end, without an event loop."""
    steps = awaitable.__await__()
    try:
        next(steps)
    except StopIteration as done:
        result: _T = done.value
        return result
    steps.close()
    raise RuntimeError("the fake n8n suspended while answering a sync client")


class _SyncStream(httpx.SyncByteStream):
    """An async body that never suspends (a truncated answer), read by a sync client."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._stream.__aiter__()
        while True:
            try:
                yield _drive(chunks.__anext__())
            except StopAsyncIteration:
                return


class _Blocking:
    """The fake's clock for sync callers: it reads the same, and its sleeps block instead."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def now(self) -> datetime:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        _block(self._clock, max(0.0, seconds))


def _block(clock: Clock, seconds: float) -> None:
    """Wait `seconds` on `clock` without yielding, as a slow server makes a sync client wait."""
    if isinstance(clock, VirtualClock):
        clock.loop.block(seconds)
    elif isinstance(clock, SystemClock):
        time.sleep(seconds)
    else:  # a clock whose sleep moves time without suspending (ManualClock)
        _drive(clock.sleep(seconds))
