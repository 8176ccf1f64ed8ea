"""The reference service as an ASGI app: cron check, Stripe intake, drain, DLQ admin, metrics.

No timers: work is driven by requests. A webhook's rows go to the delivery pool
(`reliability.delivery`) after its answer is sent, and are delivered by its workers while the
process lives; retries released to the store and leftovers after a crash are picked up by
`POST /api/cron/drain`, which an external scheduler calls. Every error answer is
JSON with a `code` (see `reliability.openapi.ERROR_CODES`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from reliability.clock import Clock, SystemClock
from reliability.config import Settings
from reliability.delivery import DeliveryPool
from reliability.dispatch import Dispatcher
from reliability.errors import ErrorCode
from reliability.intake import Intake
from reliability.logs import log_fields
from reliability.metrics import CONTENT_TYPE, Metrics
from reliability.openapi import openapi_document
from reliability.store.base import (
    DlqCursor,
    DlqEntry,
    DlqFilter,
    InvalidInput,
    OutboxRow,
    Store,
    StoreUnavailable,
)

__all__ = [
    "DRAIN_MAX_BATCH",
    "DRAIN_MAX_BUDGET",
    "LIST_MAX_LIMIT",
    "RETRY_MAX_LIMIT",
    "create_app",
]

DRAIN_MAX_BATCH = 1000
DRAIN_MAX_BUDGET = 60.0
LIST_MAX_LIMIT = 500
RETRY_MAX_LIMIT = 1000
_MAX_FILTER = 200
_MAX_CURSOR = 512
"""Cursors this API issues are ~100 characters: longer ones are refused undecoded."""

_log = logging.getLogger("reliability.app")
_JSON = "application/json"


def _dump(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _answer(status: int, value: Mapping[str, Any], **kwargs: Any) -> Response:
    return Response(_dump(value), status_code=status, media_type=_JSON, **kwargs)


def _error(status: int, code: str, message: str | None = None, **kwargs: Any) -> Response:
    body: dict[str, Any] = {"ok": False, "code": code}
    if message is not None:
        body["message"] = message
    return _answer(status, body, **kwargs)


# The seed's cron answers, byte for byte (Response.json in the seed's route.ts).
_NO_SECRET = b'{"ok":false,"code":"NO_SECRET_SET"}'
_FORBIDDEN = b'{"ok":false,"code":"FORBIDDEN"}'
_REACHABLE = b'{"ok":true,"message":"cron reachable"}'
_BEARER = b"bearer "


class _BadParameter(ValueError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _presented_secrets(scope: Mapping[str, Any]) -> tuple[bytes | None, bytes | None]:
    """The `?secret=` value (the first, as URLSearchParams.get) and the bearer token, as bytes.

    The query value is percent-decoded to raw bytes (`+` is a space), so a UTF-8 secret
    compares equal to its UTF-8 encoding, whatever characters it holds.
    """
    query: bytes = scope.get("query_string", b"")
    from_query: bytes | None = None
    if b"secret" in query:
        for part in query.split(b"&"):
            key, _, value = part.partition(b"=")
            if unquote_to_bytes(key.replace(b"+", b" ")) == b"secret":
                from_query = unquote_to_bytes(value.replace(b"+", b" "))
                break
    return from_query, _bearer(scope)


def _bearer(scope: Mapping[str, Any]) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[:7].lower() == _BEARER:
                return bytes(value[7:].strip())
            return None
    return None


class _Service:
    """The route handlers, bound to one settings/store/dispatcher set."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        dispatcher: Dispatcher,
        metrics: Metrics,
        delivery_workers: int,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.intake = Intake(settings, store, clock, claim_lease=dispatcher.lease)
        self.pool = DeliveryPool(dispatcher, clock, workers=delivery_workers)
        self._cron = settings.cron_secret.encode("utf-8")
        self._admin = settings.reliability_admin_token.encode("utf-8")
        self._openapi = _dump(openapi_document())

    # -- cron ----------------------------------------------------------------------------------

    def _cron_refusal(self, scope: Mapping[str, Any]) -> Response | None:
        expected = self._cron
        if not expected:
            return Response(_NO_SECRET, status_code=500, media_type=_JSON)
        from_query, from_header = _presented_secrets(scope)
        # Both forms are compared every time, so timing does not say which one was sent.
        ok = hmac.compare_digest(from_query or b"", expected) & (from_query is not None)
        ok |= hmac.compare_digest(from_header or b"", expected) & (from_header is not None)
        if not ok:
            return Response(_FORBIDDEN, status_code=403, media_type=_JSON)
        return None

    async def weekly_recap(self, request: Request) -> Response:
        refusal = self._cron_refusal(request.scope)
        if refusal is not None:
            return refusal
        return Response(_REACHABLE, media_type=_JSON)

    async def drain(self, request: Request) -> Response:
        refusal = self._cron_refusal(request.scope)
        if refusal is not None:
            return refusal
        params = request.query_params
        batch = _int_param(params.get("batch"), "batch", 100, 1, DRAIN_MAX_BATCH)
        budget = _float_param(params.get("budget_seconds"), "budget_seconds", 10.0)
        report = await self.dispatcher.drain(batch=batch, budget_seconds=budget)
        _log.info("drain", extra=log_fields(**report.as_dict()))
        return _answer(200, {"ok": True, **report.as_dict()})

    # -- stripe --------------------------------------------------------------------------------

    async def stripe_webhook(self, request: Request) -> Response:
        tenant_id: str = request.path_params["tenant_id"]
        limit = self.intake.body_limit
        deadline = self.settings.reliability_body_timeout_ms / 1000
        try:
            async with asyncio.timeout(deadline):
                body = await _read_body(request, limit)
        except ClientDisconnect:
            # Nobody is left to answer: one calm line (499, nginx's "client closed request").
            _log.info("client closed the request mid-body", extra=log_fields(status=499))
            self.metrics.intake_result(tenant_id, "CLIENT_CLOSED")
            return Response(status_code=499)
        except TimeoutError:
            self.metrics.intake_result(tenant_id, "REQUEST_TIMEOUT")
            return _error(
                408,
                "REQUEST_TIMEOUT",
                f"the body did not arrive within {deadline:g} s",
                headers={"Connection": "close"},
            )
        if body is None:
            self.metrics.intake_result(tenant_id, "PAYLOAD_TOO_LARGE")
            return _error(413, "PAYLOAD_TOO_LARGE", f"body is over the limit of {limit} bytes")
        result = await self.intake.handle(tenant_id, request.headers.get("stripe-signature"), body)
        self.metrics.intake_result(tenant_id, result.code.value)
        task = None
        if result.claimed:
            # Committed and leased to this process: handed to the delivery pool once the answer
            # is out (a background task), so that no n8n call ever precedes the answer.
            task = BackgroundTask(self._offer, result.claimed)
        elif result.outbox_ids:
            task = BackgroundTask(self._deliver, result.outbox_ids)
        return Response(result.body, status_code=result.status, media_type=_JSON, background=task)

    async def _offer(self, rows: Sequence[OutboxRow]) -> None:
        self.pool.offer(rows)

    async def _deliver(self, outbox_ids: Sequence[str]) -> None:
        """Immediate delivery after the answer; a failure leaves the rows to the next drain."""
        try:
            await self.dispatcher.deliver(outbox_ids)
        except Exception:
            _log.exception(
                "immediate delivery failed; the next drain picks the rows up",
                extra=log_fields(outbox_ids=list(outbox_ids)),
            )

    # -- DLQ admin -----------------------------------------------------------------------------

    def _admin_refusal(self, request: Request) -> Response | None:
        if not self._admin:
            return _error(503, "ADMIN_DISABLED", "RELIABILITY_ADMIN_TOKEN is not configured")
        token = _bearer(request.scope)
        if token is None:
            return _error(
                401,
                "UNAUTHORIZED",
                "send Authorization: Bearer <admin token>",
                headers={"WWW-Authenticate": 'Bearer realm="reliability-admin"'},
            )
        if not hmac.compare_digest(token, self._admin):
            return _error(403, "FORBIDDEN", "wrong admin token")
        return None

    async def dlq_list(self, request: Request) -> Response:
        refusal = self._admin_refusal(request)
        if refusal is not None:
            return refusal
        params = request.query_params
        flt = _dlq_filter(params)
        limit = _int_param(params.get("limit"), "limit", 50, 1, LIST_MAX_LIMIT)
        after = _decode_cursor(params.get("cursor"))
        try:
            page = await self.store.dlq_list(flt, now=self.clock.now(), after=after, limit=limit)
        except InvalidInput as exc:
            raise _BadParameter("INVALID_CURSOR", str(exc)) from None
        return _answer(
            200,
            {
                "ok": True,
                "entries": [_entry_json(e) for e in page.entries],
                "next_cursor": _encode_cursor(page.next_cursor),
            },
        )

    async def dlq_get(self, request: Request) -> Response:
        refusal = self._admin_refusal(request)
        if refusal is not None:
            return refusal
        entry = await self.store.dlq_get(request.path_params["dlq_id"], now=self.clock.now())
        if entry is None:
            return _error(404, "NOT_FOUND", "no such unexpired DLQ entry")
        return _answer(200, {"ok": True, "entry": _entry_json(entry)})

    async def dlq_retry(self, request: Request) -> Response:
        refusal = self._admin_refusal(request)
        if refusal is not None:
            return refusal
        dlq_id: str = request.path_params["dlq_id"]
        new_id = await self.store.dlq_retry(dlq_id, now=self.clock.now())
        if new_id is None:
            return _error(404, "NOT_FOUND", "no such unexpired DLQ entry (or another retry won)")
        _log.info("dlq retry", extra=log_fields(dlq_id=dlq_id, outbox_id=new_id))
        return _answer(
            200,
            {"ok": True, "outbox_id": new_id},
            background=BackgroundTask(self._deliver, (new_id,)),
        )

    async def dlq_retry_many(self, request: Request) -> Response:
        refusal = self._admin_refusal(request)
        if refusal is not None:
            return refusal
        params = request.query_params
        flt = _dlq_filter(params)
        limit = _int_param(params.get("limit"), "limit", 100, 1, RETRY_MAX_LIMIT)
        page = await self.store.dlq_list(flt, now=self.clock.now(), limit=limit)
        new_ids: list[str] = []
        for entry in page.entries:
            new_id = await self.store.dlq_retry(entry.id, now=self.clock.now())
            if new_id is not None:
                new_ids.append(new_id)
        _log.info("dlq retry many", extra=log_fields(retried=len(new_ids)))
        body = {
            "ok": True,
            "retried": len(new_ids),
            "skipped": len(page.entries) - len(new_ids),
            "outbox_ids": new_ids,
        }
        task = BackgroundTask(self._deliver, tuple(new_ids)) if new_ids else None
        return _answer(200, body, background=task)

    async def dlq_purge(self, request: Request) -> Response:
        refusal = self._admin_refusal(request)
        if refusal is not None:
            return refusal
        purged = await self.store.dlq_purge_expired(now=self.clock.now())
        _log.info("dlq purge", extra=log_fields(purged=purged))
        return _answer(200, {"ok": True, "purged": purged})

    # -- ops -----------------------------------------------------------------------------------

    async def metrics_page(self, request: Request) -> Response:
        self.metrics.set_breaker_states(self.dispatcher.breakers.states())
        try:
            self.metrics.set_dlq_depth(await self.store.dlq_depth(now=self.clock.now()))
        except StoreUnavailable:
            _log.warning("metrics: DLQ depth not refreshed, the store is unavailable")
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"ok":true}', media_type=_JSON)

    async def readyz(self, request: Request) -> Response:
        try:
            await self.store.ping()
        except Exception as exc:
            _log.warning("readyz: store unavailable", extra=log_fields(error=type(exc).__name__))
            return _error(503, "STORE_UNAVAILABLE", "the database did not answer")
        return Response(b'{"ok":true}', media_type=_JSON)

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type=_JSON)


# -- helpers -----------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 12:
        raise _BadParameter("INVALID_PARAMETER", f"{name} must be an integer in {low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise _BadParameter("INVALID_PARAMETER", f"{name} must be an integer in {low}..{high}")
    return value


def _float_param(raw: str | None, name: str, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= DRAIN_MAX_BUDGET:  # also refuses NaN
        raise _BadParameter(
            "INVALID_PARAMETER", f"{name} must be a number in (0, {DRAIN_MAX_BUDGET:g}]"
        )
    return value


def _text_param(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > _MAX_FILTER or not raw.isprintable():
        raise _BadParameter(
            "INVALID_PARAMETER",
            f"{name} must be 1..{_MAX_FILTER} printable characters",
        )
    return raw


def _dlq_filter(params: Mapping[str, str]) -> DlqFilter:
    code_raw = params.get("error_code")
    code: ErrorCode | None = None
    if code_raw is not None:
        try:
            code = ErrorCode(code_raw)
        except ValueError:
            raise _BadParameter(
                "INVALID_PARAMETER",
                "error_code must be one of " + ", ".join(c.value for c in ErrorCode),
            ) from None
    return DlqFilter(
        tenant_id=_text_param(params.get("tenant_id"), "tenant_id"),
        workflow_name=_text_param(params.get("workflow"), "workflow"),
        error_code=code,
    )


def _encode_cursor(cursor: DlqCursor | None) -> str | None:
    if cursor is None:
        return None
    raw = json.dumps([cursor.created_at.isoformat(), cursor.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> DlqCursor | None:
    """A cursor this API issued, or 400 for anything else, whatever it decodes to."""
    if raw is None:
        return None
    try:
        if len(raw) > _MAX_CURSOR:
            raise ValueError("too long")
        padded = raw + "=" * (-len(raw) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not (isinstance(decoded, list) and len(decoded) == 2):
            raise ValueError("not a pair")
        created, entry_id = decoded
        if not (isinstance(created, str) and isinstance(entry_id, str)):
            raise ValueError("not two strings")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None or not entry_id.isprintable():
            raise ValueError("naive time or unprintable id")
        entry_id.encode("utf-8")
    except (ValueError, TypeError, RecursionError, binascii.Error, UnicodeError):
        raise _BadParameter("INVALID_CURSOR", "cursor is not one this API issued") from None
    return DlqCursor(at, entry_id)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _entry_json(e: DlqEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "tenant_id": e.tenant_id,
        "workflow_name": e.workflow_name,
        "payload": dict(e.payload),
        "error_message": e.error_message,
        "error_code": e.error_code.value,
        "retry_count": e.retry_count,
        "created_at": e.created_at.isoformat(),
        "expires_at": e.expires_at.isoformat(),
        "idempotency_key": e.idempotency_key,
        "source_outbox_id": e.source_outbox_id,
        "original_created_at": _time(e.original_created_at),
        "event_id": e.event_id,
        "errors": [
            {
                "attempt": a.attempt,
                "at": a.at.isoformat(),
                "code": a.code.value,
                "message": a.message,
            }
            for a in e.errors
        ],
    }


# -- error answers -----------------------------------------------------------------------------

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_" + str(exc.status_code))
    return _error(exc.status_code, code, headers=dict(exc.headers or {}))


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _BadParameter)
    return _error(400, exc.code, str(exc))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    _log.warning("store unavailable", extra=log_fields(path=request.url.path))
    return _error(503, "STORE_UNAVAILABLE", "the store is unavailable; retry later")


async def _internal_error(request: Request, exc: Exception) -> Response:
    _log.error("unhandled error", exc_info=exc, extra=log_fields(path=request.url.path))
    return _error(500, "INTERNAL_ERROR", "unexpected error")


# -- the app -----------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    store: Store,
    clock: Clock | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
    metrics: Metrics | None = None,
    instance: str = "app",
    close_store: bool = False,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    delivery_workers: int = 64,
) -> Starlette:
    """Build the service. Without `dispatcher`, one is made (on `transport`, if given) and
    closed at shutdown; `close_store=True` also closes the store then. `app.state.service`
    holds the parts (`.intake`, `.dispatcher`, `.metrics`, `.pool`) for tests and embedding.

    Webhook deliveries run on `delivery_workers` tasks (`reliability.delivery`); at shutdown
    calls in flight get the n8n call deadline to finish and queued rows are released."""
    clock = clock if clock is not None else SystemClock()
    owns_dispatcher = dispatcher is None
    if dispatcher is None:
        dispatcher = Dispatcher(
            settings, store, clock, transport=transport, rng=rng, instance=instance
        )
    metrics = metrics if metrics is not None else Metrics(settings.tenants)
    dispatcher.add_observer(metrics.observe)
    service = _Service(settings, store, clock, dispatcher, metrics, delivery_workers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.pool.close(grace=service.dispatcher.call_deadline)
        for hook in on_shutdown:
            await hook()
        if owns_dispatcher:
            await service.dispatcher.aclose()
        if close_store:
            await store.close()

    s = service
    routes = [
        # The cron check first: the router tries routes in order, and this is the hot one.
        Route("/api/weekly-recap", s.weekly_recap, methods=["GET"]),
        Route("/api/stripe/webhook/{tenant_id}", s.stripe_webhook, methods=["POST"]),
        Route("/api/cron/drain", s.drain, methods=["POST"]),
        Route("/api/admin/dlq", s.dlq_list, methods=["GET"]),
        Route("/api/admin/dlq/retry", s.dlq_retry_many, methods=["POST"]),
        Route("/api/admin/dlq/purge", s.dlq_purge, methods=["POST"]),
        Route("/api/admin/dlq/{dlq_id}", s.dlq_get, methods=["GET"]),
        Route("/api/admin/dlq/{dlq_id}/retry", s.dlq_retry, methods=["POST"]),
        Route("/metrics", s.metrics_page, methods=["GET"]),
        Route("/healthz", s.healthz, methods=["GET"]),
        Route("/readyz", s.readyz, methods=["GET"]),
        Route("/openapi.json", s.openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            _BadParameter: _bad_parameter,
            StoreUnavailable: _store_unavailable,
            Exception: _internal_error,
        },
    )
    # No redirect built from the Host header: `/healthz/` is the same JSON 404 as any unknown path.
    app.router.redirect_slashes = False
    app.state.service = service
    return app
