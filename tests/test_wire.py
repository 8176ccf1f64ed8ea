"""The lean n8n transport (`reliability.wire`) against real sockets: keep-alive reuse, answers
framed every way HTTP/1.1 allows, compressed bodies, a closed idle connection, timeouts."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from reliability.wire import WireTransport

Answer = Callable[[bytes], bytes | None]
"""Request bytes -> raw answer bytes (None: say nothing)."""


class Server:
    """A loopback HTTP server writing raw answers; counts connections and requests."""

    def __init__(self, answer: Answer, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/webhook/x"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = self.answer(request)
                if raw is None:
                    await asyncio.Event().wait()  # hold the call: the client times out
                    return
                writer.write(raw)
                await writer.drain()
                if self.close_after:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[tuple[Server, str]]]]:
    servers: list[Server] = []

    async def start(answer: Answer, **options: bool) -> tuple[Server, str]:
        server = Server(answer, **options)
        servers.append(server)
        return server, await server.start()

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> Answer:
    return lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def post(transport: WireTransport, url: str, *, read: float = 5.0) -> httpx.Response:
    timeout = httpx.Timeout(connect=2.0, read=read, write=read, pool=2.0)
    request = httpx.Request(
        "POST",
        url,
        headers={"Idempotency-Key": "k1"},
        content=b'{"a":1}',
        extensions={"timeout": timeout.as_dict()},
    )
    response = await transport.handle_async_request(request)
    await response.aread()
    return response


async def test_keep_alive_reuses_one_connection_and_sends_the_request_intact(serve: Any) -> None:
    server, url = await serve(ok())
    transport = WireTransport()
    for _ in range(3):
        response = await post(transport, url)
        assert response.status_code == 200
        assert response.json() == {"ok": True}
    await transport.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /webhook/x HTTP/1.1\r\n")
    assert b"\r\nIdempotency-Key: k1\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a":1}')


async def test_chunked_and_gzip_answers_are_decoded(serve: Any) -> None:
    packed = gzip.compress(b'{"message":"Workflow was started"}')
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    _, url = await serve(
        lambda _: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
            + chunked
        )
    )
    transport = WireTransport()
    response = await post(transport, url)
    assert response.json() == {"message": "Workflow was started"}
    await transport.aclose()


async def test_an_answer_closing_the_connection_is_not_reused(serve: Any) -> None:
    server, url = await serve(ok(extra=b"Connection: close\r\n"))
    transport = WireTransport()
    statuses = [(await post(transport, url)).status_code for _ in range(2)]
    await transport.aclose()
    assert statuses == [200, 200]
    assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_replaced_without_losing_the_call(
    serve: Any,
) -> None:
    server, url = await serve(ok(), close_after=True)  # closes after each answer, unannounced
    transport = WireTransport()
    first = await post(transport, url)
    second = await post(transport, url)
    await transport.aclose()
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.connections == 2
    assert len(server.requests) == 2  # each call reached the server once


async def test_a_retry_after_header_and_error_status_come_through(serve: Any) -> None:
    _, url = await serve(
        lambda _: (
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nslow"
        )
    )
    transport = WireTransport()
    response = await post(transport, url)
    await transport.aclose()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.text == "slow"


async def test_no_answer_within_the_read_timeout_raises_httpx_read_timeout(serve: Any) -> None:
    _, url = await serve(lambda _: None)
    transport = WireTransport()
    with pytest.raises(httpx.ReadTimeout):
        await post(transport, url, read=0.05)
    await transport.aclose()


async def test_nobody_listening_raises_httpx_connect_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    transport = WireTransport()
    with pytest.raises(httpx.ConnectError):
        await post(transport, f"http://127.0.0.1:{port}/webhook/x")
    await transport.aclose()


async def test_a_garbled_answer_raises_a_protocol_error(serve: Any) -> None:
    _, url = await serve(lambda _: b"SMTP ready\r\n\r\n")
    transport = WireTransport()
    with pytest.raises(httpx.RemoteProtocolError):
        await post(transport, url)
    await transport.aclose()
