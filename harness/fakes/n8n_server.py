"""Serve a fake n8n for real: uvicorn on 127.0.0.1, in a thread of its own or the caller's."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from harness.fakes.faults import FaultEngine
from harness.fakes.journal import Journal
from harness.fakes.n8n_asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from harness.fakes.n8n import FakeN8n

__all__ = ["FakeN8nServer"]


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, handing the TCP transport to the app for real resets."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"harness.transport": self.transport}  # type: ignore[dict-item]


class FakeN8nServer:
    """Serve a `FakeN8n` with uvicorn on `host:port` (0: an ephemeral port) from Python.

    `start()` returns once the server accepts connections; `stop()` frees hanging calls and
    shuts it down. The fake should use a real-time clock (`SystemClock`, the default).
    """

    def __init__(
        self,
        fake: FakeN8n,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.fake = fake
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def journal(self) -> Journal:
        return self.fake.journal

    @property
    def faults(self) -> FaultEngine:
        return self.fake.faults

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        sock.listen(2048)
        sock.set_inheritable(True)
        self._sock = sock
        self._port = sock.getsockname()[1]
        return sock

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.fake,
            http=_Protocol,
            lifespan="on",
            log_level=self._log_level,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )

    def start(self, timeout: float = 10.0) -> FakeN8nServer:
        """Bind, start uvicorn on a thread of its own, and wait until it serves."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        sock = self._bind()
        config = self._config()
        server = uvicorn.Server(config)
        self._server = server
        started = self._started

        def main() -> None:
            factory = config.get_loop_factory() or asyncio.new_event_loop
            try:
                with asyncio.Runner(loop_factory=factory) as runner:
                    runner.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start()/stop(), not lost in a thread
                self._error = exc
            finally:
                started.set()

        config.load()
        self._patch_state(config)
        self._thread = threading.Thread(target=main, name=f"fake-n8n:{self.port}", daemon=True)
        self._thread.start()
        if not started.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"fake n8n did not start on {self.base_url}: {self._error!r}")
        return self

    def _patch_state(self, config: uvicorn.Config) -> None:
        # The lifespan handler sets this event once uvicorn has run startup; sockets are
        # already listening, so connections made from then on are served.
        started = self._started
        inner = config.loaded_app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                scope.setdefault("state", {})["harness.started"] = started
            await inner(scope, receive, send)

        config.loaded_app = app

    def stop(self, timeout: float = 10.0) -> None:
        """Free hanging calls, shut uvicorn down and close the socket."""
        self.fake.release_hangs()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                if self._server is not None:
                    self._server.force_exit = True
                self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._thread = None
        self._server = None

    def run(self, announce: Callable[[str], None] | None = None) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM (the command line's mode);
        `announce` gets the base URL once the port is bound."""
        sock = self._bind()
        if announce is not None:
            announce(self.base_url)
        config = self._config()
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            self.fake.release_hangs()
            sock.close()

    def __enter__(self) -> FakeN8nServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
