"""The fake n8n as an ASGI app: read the request, let the core answer, play connection faults.

A reset is a TCP RST (SO_LINGER 0), a hang holds the socket open, a truncation promises the
whole body and sends half: that needs the raw TCP transport, which `FakeN8nServer`'s protocol
hands over in the scope's `harness.transport` extension.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from harness.fakes.n8n_answers import Answer, FakeRequest

if TYPE_CHECKING:
    from harness.fakes.n8n import FakeN8n

__all__ = ["Receive", "Scope", "Send", "serve_asgi"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OUTCOME: Final = {
    "hang": "hang",
    "reset": "reset",
    "close": "closed",
    "truncate": "truncated",
    "malformed": "malformed",
}
"""The journal outcome of each connection fault."""


async def serve_asgi(fake: FakeN8n, scope: Scope, receive: Receive, send: Send) -> None:
    """One ASGI call on `fake` (what `FakeN8n.__call__` does)."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    req = await _read_request(scope, receive)
    if req is None:
        return
    answer = await _answer_unless_gone(fake, req, receive)
    if answer is None:
        return
    if answer.entry is None:  # a complete answer (possibly a status fault or malformed)
        await _send_answer(send, answer)
        return
    transport = scope.get("extensions", {}).get("harness.transport")
    if transport is None:
        raise RuntimeError(
            "connection faults need FakeN8nServer's protocol (harness.transport missing)"
        )
    fault = answer.fault or "close"
    await _play(fake, fault, answer, transport, receive)
    await _wait_disconnect(receive)
    fake.finish(answer, _OUTCOME[fault])


async def _answer_unless_gone(fake: FakeN8n, req: FakeRequest, receive: Receive) -> Answer | None:
    """The core's answer; None when the client hung up first (its own deadline during the
    injected latency). The core's wait is then cancelled, as an in-process caller cancels it,
    so the call ends in the journal as `gave_up` when the client left, not when the latency
    would have ended."""
    answering = asyncio.ensure_future(fake.answer(req))
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((answering, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if answering.done():
        return answering.result()
    answering.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await answering
    return None


async def _read_request(scope: Scope, receive: Receive) -> FakeRequest | None:
    """The whole request, or None when the client left before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return FakeRequest(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
        body=b"".join(chunks),
    )


async def _play(
    fake: FakeN8n, fault: str, answer: Answer, transport: asyncio.Transport, receive: Receive
) -> None:
    """Play a connection fault on the raw TCP transport."""
    if fault == "hang":
        await _hold(fake, receive, answer.hang_for)
        transport.close()
    elif fault == "reset":
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    elif fault == "close":
        transport.close()
    else:  # truncate: promise the whole body, send half, close
        head = [f"HTTP/1.1 {answer.status} {http.HTTPStatus(answer.status).phrase}"]
        head += [f"{k}: {v}" for k, v in answer.headers]
        head.append(f"Content-Length: {len(answer.body)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        transport.write(raw + answer.body[: len(answer.body) // 2])
        transport.close()


async def _hold(fake: FakeN8n, receive: Receive, hang_for: float) -> None:
    """Hold a call until `hang_for` passes on the clock, the client leaves or we're told."""
    with fake.holding() as release:
        waits = [
            asyncio.ensure_future(fake.clock.sleep(hang_for)),
            asyncio.ensure_future(_wait_disconnect(receive)),
            asyncio.ensure_future(release.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            started = scope.get("state", {}).get("harness.started")
            await send({"type": "lifespan.startup.complete"})
            if isinstance(started, threading.Event):
                started.set()
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send_answer(send: Send, answer: Answer) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
