"""Calm under slow and hostile clients: a guarded uvicorn HTTP protocol and the connection cap.

uvicorn has no deadline for a request's headers (its keep-alive timeout starts only after a
response), so a client that trickles header bytes, or sends none, holds a file descriptor for
ever; with enough of them `accept()` fails (EMFILE) and even `/healthz` goes dark. The guarded
protocol adds:

- a header deadline: a connection whose request headers are not complete within
  `header_timeout` seconds of its opening (or of its previous response) gets a 408 and is closed;
- a connection cap below the file-descriptor limit (`connection_cap`): a connection beyond it
  evicts the oldest one still waiting for headers (slow clients go first, a prompt probe gets
  served), and when none is waiting it is answered 503 at once and closed.

uvicorn's own `limit_concurrency` is not used for this: it counts the waiting connections too,
so beyond its cap it would answer 503 to exactly the prompt requests this guard keeps serving.
Body deadlines are the app's (`RELIABILITY_BODY_TIMEOUT_MS`).
"""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["FD_RESERVE", "GuardedHttpProtocol", "connection_cap", "fd_soft_limit"]

FD_RESERVE = 64
"""File descriptors kept free beyond the cap (at least; an eighth of the limit when larger):
the listening socket, the database pool, logs, the n8n client's connections."""


def fd_soft_limit() -> int:
    """This process's soft `RLIMIT_NOFILE` (an unlimited one counts as 1,048,576)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(fd_limit: int, configured: int = 0) -> int:
    """Open connections allowed: `configured` (0: no preference) but never closer to `fd_limit`
    than the reserve."""
    ceiling = max(1, fd_limit - max(FD_RESERVE, fd_limit // 8))
    return ceiling if configured <= 0 else min(configured, ceiling)


def _raw_answer(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"ok": False, "code": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_LATE = _raw_answer(408, "Request Timeout", "REQUEST_TIMEOUT", "request headers came too slowly")
_BUSY = _raw_answer(503, "Service Unavailable", "BUSY", "too many open connections; retry")


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a connection cap (see module).

    Configure it once per process with `configure` before the server accepts connections; pass
    the class as uvicorn's `http=`.
    """

    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 1000
    _waiting: ClassVar[dict[int, GuardedHttpProtocol]] = {}
    """Connections waiting for request headers, oldest first (dicts keep insertion order)."""
    _closing: ClassVar[set[int]] = set()
    """Connections this guard closed whose `connection_lost` has not come yet."""

    @classmethod
    def configure(cls, *, header_timeout: float, max_connections: int) -> None:
        cls.header_timeout = header_timeout
        cls.max_connections = max_connections

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) - len(self._closing) > self.max_connections:
            oldest = next((p for p in self._waiting.values() if p is not self), None)
            if oldest is None:
                self._refuse(_BUSY)
                return
            oldest._refuse(_BUSY)
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._headers_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            # Idle between requests: evictable (uvicorn's keep-alive timeout closes it too).
            self._waiting[id(self)] = self

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        self._closing.discard(id(self))
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._waiting[id(self)] = self
        self._header_timer = self.loop.call_later(self.header_timeout, self._refuse, _LATE)

    def _headers_arrived(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._waiting.pop(id(self), None)

    def _refuse(self, answer: bytes) -> None:
        self._headers_arrived()
        if self.transport.is_closing():
            return
        self._closing.add(id(self))
        self.transport.write(answer)
        self.transport.close()
