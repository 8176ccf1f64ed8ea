"""Shared helpers of the service tests (a uniquely named module, importable from each test)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import stripe
import uvicorn
from starlette.applications import Starlette

from reliability.config import Settings, TenantConfig
from reliability.store.postgres import PostgresStore

CRON = "cron-secret-42"
ADMIN = "admin-token-7"
SECRETS = ("whsec_current", "whsec_previous")


def make_settings(**overrides: Any) -> Settings:
    """Fast retries (milliseconds) and two tenants; `acme` has two signing secrets."""
    tenants = {
        "acme": TenantConfig("acme", stripe_webhook_secrets=SECRETS),
        "globex": TenantConfig("globex", stripe_webhook_secrets=("whsec_globex",)),
        "nosecret": TenantConfig("nosecret"),
    }
    base = Settings(
        n8n_webhook_url="http://n8n.test/webhook",
        n8n_api_key="n8n-key-1",
        n8n_max_retries=2,
        n8n_base_delay_ms=1,
        n8n_max_delay_ms=4,
        cron_secret=CRON,
        reliability_admin_token=ADMIN,
        reliability_body_limit_bytes=64 * 1024,
        tenants=tenants,
    )
    return replace(base, **overrides)


@dataclass
class N8nStandIn:
    """An httpx transport answering like n8n: 200 by default, or `status` for every call."""

    status: int = 200
    calls: list[httpx.Request] = field(default_factory=list)
    on_call: Callable[[httpx.Request], None] | None = None

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.on_call is not None:
            self.on_call(request)
        await asyncio.sleep(0)  # let concurrent deliveries interleave
        if self.status == 200:
            return httpx.Response(200, json={"message": "Workflow was started"})
        return httpx.Response(self.status, json={"code": self.status, "message": "down"})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def keys(self) -> list[str]:
        return [r.headers["Idempotency-Key"] for r in self.calls]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.calls]


class LiveServer:
    """uvicorn on 127.0.0.1 and an ephemeral port, in a thread with its own event loop."""

    def __init__(self, build: Callable[[], Starlette], **config: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._build = build
        self._config = {"log_level": "warning", "access_log": False, **config}
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            config = uvicorn.Config(self._build(), lifespan="on", **self._config)
            self._server = uvicorn.Server(config)
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()/stop()
            self._error = exc

    def start(self, timeout: float = 15.0) -> LiveServer:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self._server is not None and self._server.started:
                return self
            if self._error is not None or not self._thread.is_alive():
                break
            deadline.wait(0.02)
        raise RuntimeError(f"live server did not start: {self._error!r}")

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError("live server did not stop")


def event_body(event_id: str = "evt_1", type_: str = "invoice.paid", **extra: Any) -> bytes:
    """A Stripe event as Stripe sends it (JSON bytes)."""
    body = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "type": type_,
        "livemode": False,
        "data": {"object": {"id": "in_1", "object": "invoice", "amount_paid": 4200}},
        **extra,
    }
    return json.dumps(body).encode()


def stripe_header(body: bytes, secret: str = SECRETS[0], t: int | None = None) -> str:
    """A Stripe-Signature made by the official package."""
    return str(
        stripe.WebhookSignature.generate_signature_header(
            body.decode(), secret, timestamp=int(time.time()) if t is None else t
        )
    )


class ManualClock:
    """Wall time that starts at the real now and moves only when told (or when slept on)."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)
        self._mono = 0.0

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class _Settled(httpx.ASGITransport):
    """The app over ASGI; each answer returns once the deliveries it handed to the delivery
    pool are seen through (the pool's declared `wait_idle`), so a test reads their outcome."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(app=app)
        self._pool = app.state.service.pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        await self._pool.wait_idle()
        return response


class Service:
    """An app on the test's schema, a client on it, its store and its clock."""

    def __init__(self, app: Starlette, store: PostgresStore, clock: ManualClock) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        self.client = httpx.AsyncClient(transport=_Settled(app), base_url="http://service.test")

    async def post_event(self, body: bytes, tenant: str = "acme") -> httpx.Response:
        return await self.client.post(
            f"/api/stripe/webhook/{tenant}",
            content=body,
            headers={"stripe-signature": stripe_header(body), "content-type": "application/json"},
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.state.service.dispatcher.aclose()
        await self.store.close()
