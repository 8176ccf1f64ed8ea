"""Calls to n8n's webhooks: one POST per try at a delivery, and what its answer means.

The dispatcher needs none of what an `httpx.AsyncClient` adds around a request (cookies,
redirects, auth flows, event hooks), and a client's shared cookie jar would even carry one
tenant's cookies into another's calls. So `N8nClient` builds each request with httpx's public
`Request` and hands it to an httpx transport: in production `reliability.wire.WireTransport`,
a lean keep-alive HTTP/1.1 transport for this one call (httpx's own pooled transport cost more
per call than the rest of a delivery), the fake n8n's in-process transport in the simulator, or
any transport a caller passes. Proxy environment variables are not read: n8n is called
directly.
"""

from __future__ import annotations

import asyncio
import json
from importlib import metadata
from typing import Final
from urllib.parse import quote

import httpx

from reliability.backoff import parse_retry_after
from reliability.clock import Clock
from reliability.config import Settings
from reliability.decision import Answered
from reliability.errors import ErrorCode
from reliability.routing import workflow_url
from reliability.store.base import MAX_ERROR_MESSAGE, OutboxRow
from reliability.wire import WireTransport

__all__ = ["NO_ITEM_ANSWER", "N8nClient", "classify_status", "header_value"]

_COMPACT: Final = json.JSONEncoder(separators=(",", ":"))
KEEPALIVE: Final = 128
"""Idle connections to n8n kept open for reuse."""
_MESSAGE_BODY: Final = 200
"""Characters of a failed answer's body kept in its error message."""
NO_ITEM_ANSWER: Final = b'{"code":0,"message":"No item to return was found"}'
"""n8n's 500 when a webhook answering "when last node finishes" with "first entry JSON" ran the
workflow successfully but its last node gave no item: what a Remove Duplicates node that dropped
a retried delivery leads to (n8n/README.md). The workflow ran, so the delivery is done."""


def classify_status(status: int) -> ErrorCode | None:
    """2xx succeeds; 408 is a timeout, 429 and 5xx are retryable; other 4xx are permanent."""
    if 200 <= status < 300:
        return None
    if status == 408:
        return ErrorCode.TIMEOUT
    if status == 429:
        return ErrorCode.HTTP_429
    if 400 <= status < 500:
        return ErrorCode.HTTP_4XX
    return ErrorCode.HTTP_5XX


_HEADER_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
"""Kept as they are in an id's header value: visible ASCII but `%`, which starts an escape."""


def header_value(text: str) -> str:
    """`text` as a header value that always encodes: UTF-8 percent-encoded outside visible ASCII
    (and `%` itself, so two different ids never share a value). Stripe ids (`evt_...`) and
    ordinary tenant ids pass unchanged; `évt` becomes `%C3%A9vt`. The payload keeps them raw."""
    return quote(text, safe=_HEADER_SAFE)


def _user_agent() -> str:
    try:
        return f"reliability-harness/{metadata.version('reliability-harness')}"
    except metadata.PackageNotFoundError:
        return "reliability-harness"


class N8nClient:
    """POSTs outbox rows to their workflow's webhook and classifies the answer."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        # The lean transport for the hot call (reliability/wire.py); every connection a burst
        # opens stays open for the next one.
        self._transport = transport if transport is not None else WireTransport(keepalive=KEEPALIVE)
        connect = settings.n8n_connect_timeout_ms / 1000
        read = settings.n8n_read_timeout_ms / 1000
        timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
        # httpx's timeouts bound each read, not the call: a body dripping a byte per read
        # timeout would hold the call (and outlive the row's lease) for ever. The whole call,
        # connect + headers + body, ends by this deadline; the dispatcher's lease outlasts it.
        self.deadline = connect + read
        self._extensions = {"timeout": timeout.as_dict()}
        self._headers: list[tuple[str, str]] = [
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("User-Agent", _user_agent()),
            ("Content-Type", "application/json"),
        ]
        if settings.n8n_api_key:
            self._headers.append((settings.n8n_api_key_header, settings.n8n_api_key))
        self._urls: dict[str, httpx.URL] = {}

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def post(self, row: OutboxRow) -> Answered:
        """One call for `row`; transport failures become answers without a status."""
        headers = [
            *self._headers,
            ("Idempotency-Key", header_value(row.idempotency_key)),
            ("X-Tenant-Id", header_value(row.tenant_id)),
        ]
        request = httpx.Request(
            "POST",
            self._url(row.workflow),
            headers=headers,
            content=_COMPACT.encode(row.payload).encode(),
            extensions=self._extensions,
        )
        try:
            async with asyncio.timeout(self.deadline):
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            # May have reached n8n, as any timeout: the retry carries the same idempotency key.
            message = f"DeadlineExceeded: no complete answer within {self.deadline:g} s"
            return Answered(None, ErrorCode.TIMEOUT, None, message)
        except httpx.ConnectTimeout as exc:
            return Answered(None, ErrorCode.CONNECTION, None, _describe(exc))
        except httpx.TimeoutException as exc:
            # The request may have reached n8n: the retry carries the same idempotency key.
            return Answered(None, ErrorCode.TIMEOUT, None, _describe(exc))
        except httpx.TransportError as exc:
            return Answered(None, ErrorCode.CONNECTION, None, _describe(exc))
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> Answered:
        status = response.status_code
        if status == 500 and response.content.strip() == NO_ITEM_ANSWER:
            return Answered(status, None, None, "HTTP 500 ran, no item to return (a dedupe drop)")
        code = classify_status(status)
        if code is None:
            return Answered(status, None, None, f"HTTP {status} ")
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock.now())
        text = response.text[:_MESSAGE_BODY]
        return Answered(status, code, retry_after, f"HTTP {status} {text}")

    def _url(self, workflow: str) -> httpx.URL:
        url = self._urls.get(workflow)
        if url is None:  # parsed once per workflow, not on every call
            url = self._urls[workflow] = httpx.URL(workflow_url(self._settings, workflow))
        return url


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_MESSAGE]
