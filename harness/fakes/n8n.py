"""A fake n8n: its webhook surface, answers byte for byte, faults on command, and a journal.

One core (`FakeN8n`) decides every answer; two adapters deliver it. `FakeN8n` itself is an ASGI
app, served for real by `FakeN8nServer` (uvicorn on 127.0.0.1, where a reset is a TCP RST and a
hang holds the socket open), and `FakeN8nTransport` runs the same core inside httpx, sleeping on
the injected clock and raising what httpx raises against the real server. So one test suite sees
the same outcomes either way for the same seed.

Routes: `/webhook/<path>` (registered workflows), `/webhook-test/<path>` (never listening),
`/healthz`, and a control API like Toxiproxy's: `GET/PUT /__faults`, `GET /__journal`
(`?bucket=SECONDS` adds arrivals per bucket), `POST /__reset`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http
import json
import math
import random
import socket
import struct
import threading
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from harness.data import data_path
from harness.fakes.faults import (
    Decision,
    FaultEngine,
    FaultProfile,
    FaultProfileError,
    parse_profile,
)
from harness.fakes.journal import Journal, JournalEntry
from harness.fakes.n8n_export import (
    Credential,
    Credentials,
    Execution,
    WebhookSpec,
    Workflow,
    WorkflowError,
    load_credentials,
    load_workflows,
)
from reliability.clock import Clock, SystemClock

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_WORKFLOWS",
    "FakeN8n",
    "FakeN8nServer",
    "FakeN8nTransport",
    "FakeRequest",
]

DEFAULT_WORKFLOWS: Final = data_path("n8n", "workflows")
"""The seed's three sample workflows, loaded when no other workflows are given."""

DEFAULT_CREDENTIALS: Final = Credentials(
    [
        Credential(
            id="RhWebhookKey0001",
            name="Reliability webhook key",
            type="httpHeaderAuth",
            data={"name": "X-N8N-Webhook-Key", "value": "local-test-webhook-key"},
        )
    ]
)
"""The header-auth credential the sample workflows reference, for local and test runs only."""

_JSON: Final = "application/json; charset=utf-8"
_WWW_AUTH: Final = ("WWW-Authenticate", 'Basic realm="Webhook"')
_PROD_HINT: Final = (
    "The workflow must be active for a production URL to run successfully. You can activate the "
    "workflow using the toggle in the top-right of the editor. Note that unlike test URL calls, "
    "production URL calls aren't shown on the canvas (only in the executions list)"
)
_TEST_HINT: Final = (
    "Click the 'Execute workflow' button on the canvas, then try again. (In test mode, the "
    "webhook only works for one call after you click this button)"
)
_FAULT_BODIES: Final = {
    500: {"message": "Error in workflow"},
    503: {"code": 503, "message": "Database is not ready!"},
}
_STARTED: Final = b'{"message":"Workflow was started"}'
_OUTCOME: Final = {
    "hang": "hang",
    "reset": "reset",
    "close": "closed",
    "truncate": "truncated",
    "malformed": "malformed",
}

Headers = tuple[tuple[str, str], ...]
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """A request as both adapters hand it to the core; header names are lower case."""

    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes = b""
    _index: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # First value wins, as a scan from the front would find it.
        object.__setattr__(self, "_index", dict(reversed(self.headers)))

    def header(self, name: str) -> str | None:
        return self._index.get(name)


@dataclass(slots=True)
class _Answer:
    status: int
    headers: Headers
    body: bytes
    fault: str | None = None
    hang_for: float = 0.0
    entry: JournalEntry | None = None
    decision: Decision | None = None
    ran: bool = False


def _json_bytes(value: object) -> bytes:
    """JSON as Express's `res.json` writes it: compact, UTF-8, integral floats without `.0`."""
    return json.dumps(_js_numbers(value), separators=(",", ":"), ensure_ascii=False).encode()


def _js_numbers(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_js_numbers(v) for v in value]
    return value


def _json_answer(status: int, value: object, *extra: tuple[str, str]) -> _Answer:
    return _Answer(status, (("Content-Type", _JSON), *extra), _json_bytes(value))


class FakeN8n:
    """The fake's core and its ASGI app: routing, n8n's answers, faults, journal."""

    base_url: Final = "http://fake-n8n.invalid"

    def __init__(
        self,
        workflows: Sequence[Workflow] | None = None,
        *,
        credentials: Credentials | None = None,
        faults: FaultProfile | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        rng: random.Random | None = None,
        journal_capacity: int = 1_000_000,
    ) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        if workflows is None:
            workflows = load_workflows(DEFAULT_WORKFLOWS)
            credentials = Credentials(DEFAULT_CREDENTIALS) if credentials is None else credentials
        self.workflows: tuple[Workflow, ...] = tuple(workflows)
        self.credentials = credentials if credentials is not None else Credentials()
        self.journal = Journal(self.clock, capacity=journal_capacity)
        self.faults = FaultEngine(faults, clock=self.clock, rng=rng, seed=seed)
        self._routes = _routes(self.workflows)
        self._holds: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._holds_lock = threading.Lock()
        self._transport: FakeN8nTransport | None = None

    @classmethod
    def from_files(
        cls,
        workflows: str | Path | Sequence[str | Path] | None = None,
        *,
        credentials: str | Path | None = None,
        faults: str | Path | FaultProfile | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        lenient: bool = False,
        active: bool | None = None,
    ) -> FakeN8n:
        """Build from exported workflow files, a credentials export and a fault profile file."""
        from harness.fakes.faults import load_profile

        loaded = load_workflows(
            DEFAULT_WORKFLOWS if workflows is None else workflows, lenient=lenient, active=active
        )
        creds = load_credentials(credentials) if credentials is not None else None
        if creds is None and workflows is None:
            creds = Credentials(DEFAULT_CREDENTIALS)
        if isinstance(faults, str | Path):
            profile: FaultProfile | None = load_profile(faults)
        elif isinstance(faults, Mapping):
            profile = parse_profile(faults)
        else:
            profile = faults
        return cls(loaded, credentials=creds, faults=profile, clock=clock, seed=seed)

    @property
    def transport(self) -> FakeN8nTransport:
        """An httpx transport running this fake in-process (one per fake)."""
        if self._transport is None:
            self._transport = FakeN8nTransport(self)
        return self._transport

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` on the in-process transport, with `base_url` set."""
        return httpx.AsyncClient(transport=self.transport, base_url=self.base_url, **kwargs)

    def reset(self) -> None:
        """Empty the journal, restart faults (first profile and RNG state), free hanging calls."""
        self.release_hangs()
        self.journal.reset()
        self.faults.reset()

    def release_hangs(self) -> None:
        """End every call held by a hang now (the connection closes without an answer)."""
        with self._holds_lock:
            holds = list(self._holds)
        for loop, event in holds:
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(event.set)

    # --- the core ------------------------------------------------------------------------

    async def answer(self, req: FakeRequest) -> _Answer:
        """Decide the answer to `req`, sleeping on the clock for injected latency."""
        path = req.path
        if path.startswith("/webhook/"):
            return await self._webhook(req, path[len("/webhook/") :])
        if path in ("/healthz", "/healthz/readiness"):
            return _json_answer(200, {"status": "ok"})
        if path.startswith("/webhook-test/"):
            wpath = path[len("/webhook-test/") :].rstrip("/")
            msg = f'The requested webhook "{wpath}" is not registered.'
            return _json_answer(404, {"code": 404, "message": msg, "hint": _TEST_HINT})
        if path.startswith("/__"):
            return self._control(req)
        return _Answer(
            404,
            (("Content-Type", "text/plain; charset=utf-8"),),
            f"Cannot {req.method} {path}".encode(),
        )

    def finish(self, answer: _Answer, outcome: str) -> None:
        """Close the journal entry of a faulted call once the adapter has played the fault."""
        if answer.entry is not None:
            d = answer.decision
            self.journal.finish(
                answer.entry,
                outcome=outcome,
                status=answer.status if outcome in ("truncated", "malformed") else None,
                fault=answer.fault,
                latency=d.latency if d is not None else 0.0,
                ran=answer.ran,
            )

    async def _webhook(self, req: FakeRequest, wpath: str) -> _Answer:
        wpath = wpath.rstrip("/")
        tenant = _tenant(req)
        entry = self.journal.begin(
            method=req.method,
            path=wpath,
            tenant=tenant,
            idempotency_key=req.header("idempotency-key"),
        )
        decision = self.faults.decide(wpath, tenant)
        if decision.latency > 0:
            await self.clock.sleep(decision.latency)
        action = decision.action
        if action is not None and action.kind == "status":
            answer = _status_fault(action.status or 500, action.retry_after)
            answer.fault = action.label
        else:
            answer = self._n8n(req, wpath)
        answer.entry, answer.decision = entry, decision
        if action is None or action.kind == "status":
            self.journal.finish(
                entry,
                outcome="answered",
                status=answer.status,
                fault=answer.fault,
                latency=decision.latency,
                ran=answer.ran,
            )
            answer.entry = None
            return answer
        answer.ran = answer.ran and decision.runs_workflow
        answer.fault = action.kind
        answer.hang_for = decision.hang_for
        if action.kind == "malformed":
            answer.body = answer.body[: len(answer.body) // 2] if answer.body else b"{"
            answer.headers = tuple(h for h in answer.headers if h[0] != "Content-Type")
            answer.headers += (("Content-Type", _JSON),)
            self.finish(answer, "malformed")
            answer.entry = None
        elif action.kind == "truncate" and not answer.body:
            answer.body = _json_bytes({"message": "Workflow was started"})
        return answer

    def _n8n(self, req: FakeRequest, wpath: str) -> _Answer:
        methods = self._routes.get(wpath)
        if not methods:
            msg = f'The requested webhook "{req.method} {wpath}" is not registered.'
            return _json_answer(404, {"code": 404, "message": msg, "hint": _PROD_HINT})
        found = methods.get(req.method)
        if found is None:
            allowed = list(methods)
            listed = allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1])
            if len(allowed) > 1:
                listed += f" or {allowed[-1]}"
            msg = (
                f"This webhook is not registered for {req.method} requests. "
                f"Did you mean to make a {listed} request?"
            )
            return _json_answer(404, {"code": 404, "message": msg})
        workflow, spec = found
        refused = self._check_auth(spec, req)
        if refused is not None:
            return refused
        if spec.response_mode == "onReceived":
            # n8n answers before the run, so nothing the run does can change the answer.
            answer = _respond(spec, None)
        else:
            execution = workflow.execute(spec.node, _webhook_item(req, wpath, self.base_url))
            answer = _respond(spec, execution)
        answer.ran = True
        return answer

    def _check_auth(self, spec: WebhookSpec, req: FakeRequest) -> _Answer | None:
        if spec.credential is None:
            return None
        cred = self.credentials.find(spec.credential)
        if spec.authentication == "headerAuth":
            if cred is None or not cred.data.get("name") or not cred.data.get("value"):
                return _auth_refusal(500, "No authentication data defined on node!")
            if req.header(cred.data["name"].lower()) != cred.data["value"]:
                return _auth_refusal(403, "Authorization data is wrong!")
            return None
        if cred is None or not cred.data.get("user") or not cred.data.get("password"):
            return _auth_refusal(500, "No authentication data defined on node!")
        given = _basic_auth(req.header("authorization"))
        if given is None:
            return _auth_refusal(401, "Authorization is required!")
        if given != (cred.data["user"], cred.data["password"]):
            return _auth_refusal(403, "Authorization data is wrong!")
        return None

    def _control(self, req: FakeRequest) -> _Answer:
        route = (req.method, req.path)
        if route == ("GET", "/__faults"):
            return _json_answer(200, self.faults.profile.to_json())
        if route == ("PUT", "/__faults"):
            try:
                profile = parse_profile(req.body, source="PUT /__faults body")
            except FaultProfileError as exc:
                return _json_answer(400, {"error": str(exc), "key": exc.key})
            self.faults.load(profile)
            return _json_answer(200, profile.to_json())
        if route == ("GET", "/__journal"):
            query = urllib.parse.parse_qs(req.query)
            bucket: float | None = None
            if "bucket" in query:
                try:
                    bucket = float(query["bucket"][0])
                    if not bucket > 0 or not math.isfinite(bucket):
                        raise ValueError(bucket)
                except ValueError:
                    return _json_answer(400, {"error": "bucket must be a positive number"})
            return _json_answer(200, self.journal.to_json(bucket=bucket))
        if route == ("POST", "/__reset"):
            self.reset()
            return _json_answer(200, {"status": "reset"})
        known = {"/__faults": "GET, PUT", "/__journal": "GET", "/__reset": "POST"}
        if req.path in known:
            return _json_answer(
                405, {"error": f"{req.method} not allowed"}, ("Allow", known[req.path])
            )
        return _json_answer(404, {"error": f"no control route {req.path}"})

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        req = FakeRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
            body=b"".join(chunks),
        )
        answer = await self.answer(req)
        if answer.entry is None:  # a complete answer (possibly a status fault or malformed)
            await _send_answer(send, answer)
            return
        fault = answer.fault or "close"
        transport = scope.get("extensions", {}).get("harness.transport")
        if transport is None:
            raise RuntimeError(
                "connection faults need FakeN8nServer's protocol (harness.transport missing)"
            )
        if fault == "hang":
            await self._hold(receive, answer.hang_for)
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
        await _wait_disconnect(receive)
        self.finish(answer, _OUTCOME[fault])

    async def _hold(self, receive: _Receive, hang_for: float) -> None:
        """Hold a call until `hang_for` passes on the clock, the client leaves or we're told."""
        loop = asyncio.get_running_loop()
        release = asyncio.Event()
        hold = (loop, release)
        with self._holds_lock:
            self._holds.add(hold)
        waits = [
            asyncio.ensure_future(self.clock.sleep(hang_for)),
            asyncio.ensure_future(_wait_disconnect(receive)),
            asyncio.ensure_future(release.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            with self._holds_lock:
                self._holds.discard(hold)


async def _wait_disconnect(receive: _Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(scope: _Scope, receive: _Receive, send: _Send) -> None:
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


async def _send_answer(send: _Send, answer: _Answer) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _routes(workflows: Sequence[Workflow]) -> dict[str, dict[str, tuple[Workflow, WebhookSpec]]]:
    routes: dict[str, dict[str, tuple[Workflow, WebhookSpec]]] = {}
    for wf in workflows:
        if not wf.active:
            continue
        for spec in wf.webhooks:
            by_method = routes.setdefault(spec.path, {})
            for method in spec.methods:
                if method in by_method:
                    other = by_method[method][0]
                    raise WorkflowError(
                        f"{wf.source}: workflow {wf.name!r}: webhook {method} {spec.path!r} "
                        f"conflicts with workflow {other.name!r} ({other.source})"
                    )
                by_method[method] = (wf, spec)
    return routes


def _tenant(req: FakeRequest) -> str:
    tenant = req.header("x-tenant-id")
    if tenant is not None:
        return tenant
    if req.body[:1] == b"{" and b'"tenant_id"' in req.body:
        try:
            body = json.loads(req.body)
        except ValueError:
            return ""
        value = body.get("tenant_id") if isinstance(body, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return ""


def _webhook_item(req: FakeRequest, wpath: str, base_url: str) -> dict[str, Any]:
    body: Any
    try:
        body = json.loads(req.body) if req.body else {}
    except ValueError:
        body = req.body.decode("utf-8", "replace")
    query = {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(req.query).items()}
    return {
        "json": {
            "headers": dict(req.headers),
            "params": {},
            "query": query,
            "body": body,
            "webhookUrl": f"{base_url}/webhook/{wpath}",
            "executionMode": "production",
        }
    }


def _respond(spec: WebhookSpec, execution: Execution | None) -> _Answer:
    code = spec.response_code
    if spec.response_mode == "onReceived" or execution is None:
        if spec.no_response_body:
            return _Answer(code, (), b"")
        return _Answer(code, (("Content-Type", _JSON),), _STARTED)
    if execution.error is not None:
        return _json_answer(500, {"message": "Error in workflow"})
    if spec.response_mode == "responseNode" and execution.respond is not None:
        r = execution.respond
        if r.kind == "noData":
            return _Answer(r.status, r.headers, b"")
        if r.kind == "text":
            ctype = ("Content-Type", "text/html; charset=utf-8")
            return _Answer(r.status, (ctype, *r.headers), str(r.body).encode())
        headers = tuple(h for h in r.headers if h[0].lower() != "content-type")
        given = [h for h in r.headers if h[0].lower() == "content-type"]
        return _Answer(
            r.status,
            (given[0] if given else ("Content-Type", _JSON), *headers),
            _json_bytes(r.body),
        )
    items = [item.get("json", item) for item in execution.items]
    if spec.response_data == "noData":
        return _Answer(code, (), b"")
    if spec.response_data == "allEntries":
        return _json_answer(code, items)
    return _json_answer(code, items[0] if items else {})


def _status_fault(status: int, retry_after: float | None) -> _Answer:
    body = _FAULT_BODIES.get(status, {"code": status, "message": http.HTTPStatus(status).phrase})
    if status in (429, 503):
        seconds = str(max(0, math.ceil(retry_after if retry_after is not None else 1.0)))
        return _json_answer(status, body, ("Retry-After", seconds))
    return _json_answer(status, body)


def _auth_refusal(status: int, text: str) -> _Answer:
    # n8n writes these with writeHead + end: no Content-Type, just the realm header.
    return _Answer(status, (_WWW_AUTH,), text.encode())


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


# --- in-process ----------------------------------------------------------------------------


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
        answer = await fake.answer(req)
        fault = answer.fault if answer.entry is not None else None
        if fault is None:
            headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
            # `content=` hands httpx the body already read: no stream to iterate afterwards.
            return httpx.Response(
                answer.status, headers=headers, content=answer.body, request=request
            )
        if fault == "hang":
            timeout = request.extensions.get("timeout", {}).get("read")
            if timeout is not None and timeout < answer.hang_for:
                await fake.clock.sleep(timeout)
                fake.finish(answer, "hang")
                raise httpx.ReadTimeout("", request=request)
            await fake.clock.sleep(answer.hang_for)
            fake.finish(answer, "hang")
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
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


class _Truncated(httpx.AsyncByteStream):
    """Half the promised body, then the error httpx raises when the peer closes early."""

    def __init__(self, fake: FakeN8n, answer: _Answer, request: httpx.Request) -> None:
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


# --- served --------------------------------------------------------------------------------


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

        async def app(scope: _Scope, receive: _Receive, send: _Send) -> None:
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
