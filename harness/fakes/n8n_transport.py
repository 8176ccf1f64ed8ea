"""The fake n8n inside httpx: the same core as the served fake, no sockets.

Latency and hangs sleep on the fake's clock; connection faults raise what httpx raises against
the served fake (`ReadTimeout`, `ReadError`, `RemoteProtocolError`), so a test sees the same
outcomes either way for the same seed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

from harness.fakes.n8n_answers import Answer, FakeRequest

if TYPE_CHECKING:
    from harness.fakes.n8n import FakeN8n

__all__ = ["FakeN8nTransport"]


class FakeN8nTransport(httpx.AsyncBaseTransport):
    """The fake inside httpx: latency and hangs sleep on the fake's clock; faults raise what
    httpx raises against the served fake (`ReadTimeout`, `ReadError`, `RemoteProtocolError`)."""

    def __init__(self, fake: FakeN8n) -> None:
        self.fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        req = FakeRequest(
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode("latin-1"),
            headers=tuple(
                (k.lower().decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
            ),
            body=body,
        )
        fake = self.fake
        read_timeout = request.extensions.get("timeout", {}).get("read")
        answer = await fake.answer(req)
        fault = answer.fault if answer.entry is not None else None
        if fault is None:
            headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
            # `content=` hands httpx the body already read: no stream to iterate afterwards.
            return httpx.Response(
                answer.status, headers=headers, content=answer.body, request=request
            )
        if fault == "hang":
            await self._hang(answer, read_timeout, request)
        if fault == "reset":
            fake.finish(answer, "reset")
            raise httpx.ReadError("", request=request)
        if fault == "close":
            fake.finish(answer, "closed")
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        full = len(answer.body)
        headers = [*answer.headers, ("Content-Length", str(full))]
        return httpx.Response(
            answer.status,
            headers=headers,
            stream=_Truncated(fake, answer, request),
            request=request,
        )

    async def _hang(self, answer: Answer, timeout: float | None, request: httpx.Request) -> None:
        """Hold the call; the journal entry ends whenever the client does, also when the
        caller's own deadline cancels it."""
        fake = self.fake
        try:
            if timeout is not None and timeout < answer.hang_for:
                await fake.clock.sleep(timeout)
                raise httpx.ReadTimeout("", request=request)
            await fake.clock.sleep(answer.hang_for)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        finally:
            fake.finish(answer, "hang")


class _Truncated(httpx.AsyncByteStream):
    """Half the promised body, then the error httpx raises when the peer closes early."""

    def __init__(self, fake: FakeN8n, answer: Answer, request: httpx.Request) -> None:
        self._fake, self._answer, self._request = fake, answer, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        body = self._answer.body
        yield body[: len(body) // 2]
        self._fake.finish(self._answer, "truncated")
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {len(body) // 2} bytes, expected {len(body)})",
            request=self._request,
        )
