"""A lean HTTP/1.1 transport for the dispatcher's one hot call: POST a small JSON body to n8n.

httpx's default transport (httpcore) costs more per call than the rest of a delivery together
under load: it scans every pooled connection and polls each socket (`select`) before it picks
one. This transport speaks just what the call needs, behind httpx's public transport interface
(`httpx.AsyncBaseTransport`), so `N8nClient` builds `httpx.Request`s and reads
`httpx.Response`s as before, and tests and the simulator keep passing their own httpx
transports:

- one keep-alive pool per origin (scheme, host, port); an idle connection the server has closed
  is seen (at EOF) and dropped before reuse, and a request that finds a reused connection closed
  before any byte of an answer is sent once more on a fresh one (nothing reached n8n);
- `Content-Length` and chunked answers, `gzip`/`deflate` bodies, `Connection: close`;
- TLS for `https` URLs (the system's default context); no proxies, redirects or cookies;
- the timeouts of the request's `timeout` extension (connect, read, write, pool), raised as
  httpx's own exceptions, so callers classify failures exactly as with httpx's transport.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from typing import Final

import httpx

__all__ = ["WireTransport"]

_MAX_HEAD: Final = 64 * 1024
_CRLF: Final = b"\r\n"


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class _Reused(Exception):
    """A reused connection ended before the answer began: the request never reached n8n."""


class WireTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive pools; at most `keepalive` idle connections per origin."""

    def __init__(self, *, keepalive: int = 128) -> None:
        self._keepalive = keepalive
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head, body = _encode(request), request.content
        idle = self._idle.setdefault(origin, deque())
        while idle:
            conn = idle.pop()
            if not conn.usable():
                conn.close()
                continue
            try:
                return await self._exchange(conn, origin, head, body, timeouts, reused=True)
            except _Reused:
                continue
        conn = await self._connect(origin, timeouts.get("connect"))
        return await self._exchange(conn, origin, head, body, timeouts, reused=False)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Conn:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _Conn(reader, writer)

    async def _exchange(
        self,
        conn: _Conn,
        origin: tuple[str, str, int],
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
        *,
        reused: bool,
    ) -> httpx.Response:
        keep = False
        try:
            try:
                conn.writer.write(head + body)
                async with asyncio.timeout(timeouts.get("write")):
                    await conn.writer.drain()
            except TimeoutError as exc:
                raise httpx.WriteTimeout("write timed out") from exc
            except OSError as exc:
                if reused:
                    raise _Reused from exc
                raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from exc
            response, keep = await _read_response(conn.reader, timeouts.get("read"), reused)
            return response
        finally:
            idle = self._idle.get(origin)
            if keep and not self._closed and idle is not None and len(idle) < self._keepalive:
                idle.append(conn)
            else:
                conn.close()


def _encode(request: httpx.Request) -> bytes:
    url = request.url
    target = url.raw_path.decode("ascii")
    lines = [f"{request.method} {target} HTTP/1.1".encode("ascii")]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return _CRLF.join(lines) + _CRLF + _CRLF


async def _read_response(
    reader: asyncio.StreamReader, timeout: float | None, reused: bool
) -> tuple[httpx.Response, bool]:
    """The answer, and whether the connection may carry another request."""
    try:
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError as exc:
        raise httpx.ReadTimeout("no answer within the read timeout") from exc
    except asyncio.IncompleteReadError as exc:
        if reused and not exc.partial:
            raise _Reused from exc
        raise httpx.RemoteProtocolError("server disconnected without an answer") from exc
    except (asyncio.LimitOverrunError, OSError) as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
    if len(head) > _MAX_HEAD:
        raise httpx.RemoteProtocolError("answer headers too large")
    status_line, *header_lines = head[:-4].split(_CRLF)
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError("not an HTTP/1.x answer")
    status = int(parts[1])
    headers: list[tuple[bytes, bytes]] = []
    for line in header_lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError("malformed answer header")
        headers.append((name.strip(), value.strip()))
    fields = {k.lower(): v for k, v in headers}
    body = await _read_body(reader, fields, status, timeout)
    encoding = fields.get(b"content-encoding", b"").lower()
    if encoding in (b"gzip", b"deflate"):
        body = _decompress(body, encoding)
        headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
    keep = parts[0] == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
    keep &= b"content-length" in fields or b"chunked" in fields.get(b"transfer-encoding", b"")
    return httpx.Response(status, headers=headers, content=body), keep


async def _read_body(
    reader: asyncio.StreamReader, fields: dict[bytes, bytes], status: int, timeout: float | None
) -> bytes:
    if status in (204, 304) or 100 <= status < 200:
        return b""
    try:
        async with asyncio.timeout(timeout):
            if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
                return await _read_chunked(reader)
            length = fields.get(b"content-length")
            if length is not None:
                if not length.isdigit():
                    raise httpx.RemoteProtocolError("bad Content-Length")
                return await reader.readexactly(int(length))
            return await reader.read()  # until the server closes
    except TimeoutError as exc:
        raise httpx.ReadTimeout("the answer's body did not arrive in time") from exc
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("server disconnected mid-body") from exc
    except OSError as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(_CRLF)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise httpx.RemoteProtocolError("bad chunk size") from exc
        if size == 0:
            while await reader.readuntil(_CRLF) != _CRLF:  # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _decompress(body: bytes, encoding: bytes) -> bytes:
    try:
        if encoding == b"gzip":
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    except zlib.error as exc:
        raise httpx.DecodingError(f"bad {encoding.decode()} body") from exc
