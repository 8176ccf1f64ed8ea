"""A fake n8n: its webhook surface, answers byte for byte, faults on command, and a journal.

One core (`FakeN8n`) decides every answer; adapters deliver it. `FakeN8n` is an ASGI app
(`harness.fakes.n8n_asgi`), served for real by `FakeN8nServer` (`harness.fakes.n8n_server`:
uvicorn on 127.0.0.1, where a reset is a TCP RST and a hang holds the socket open), and
`FakeN8nTransport` (`harness.fakes.n8n_transport`) runs the same core inside httpx, sleeping on
the injected clock and raising what httpx raises against the real server. So one test suite sees
the same outcomes either way for the same seed. What n8n writes on the wire is in
`harness.fakes.n8n_answers`; the control API in `harness.fakes.n8n_control`.

Routes: `/webhook/<path>` (registered workflows), `/webhook-test/<path>` (never listening),
`/healthz`, and a control API like Toxiproxy's: `GET/PUT /__faults`, `GET /__journal`
(`?bucket=SECONDS` adds arrivals per bucket), `POST /__reset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import httpx

from harness.data import data_path
from harness.fakes.faults import FaultEngine, FaultProfile, parse_profile
from harness.fakes.journal import Journal
from harness.fakes.n8n_answers import (
    JSON_TYPE,
    PROD_HINT,
    TEST_HINT,
    Answer,
    FakeRequest,
    check_auth,
    json_answer,
    json_bytes,
    respond,
    routes_of,
    status_fault,
    tenant_of,
    webhook_item,
)
from harness.fakes.n8n_asgi import Receive, Scope, Send, serve_asgi
from harness.fakes.n8n_control import control_answer
from harness.fakes.n8n_export import (
    Credential,
    Credentials,
    Workflow,
    load_credentials,
    load_workflows,
)
from harness.fakes.n8n_server import FakeN8nServer
from harness.fakes.n8n_transport import FakeN8nTransport
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
        self._routes = routes_of(self.workflows)
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

    @contextlib.contextmanager
    def holding(self) -> Iterator[asyncio.Event]:
        """Register a hanging call; `release_hangs` sets the event it yields."""
        hold = (asyncio.get_running_loop(), asyncio.Event())
        with self._holds_lock:
            self._holds.add(hold)
        try:
            yield hold[1]
        finally:
            with self._holds_lock:
                self._holds.discard(hold)

    # --- the core ------------------------------------------------------------------------

    async def answer(self, req: FakeRequest) -> Answer:
        """Decide the answer to `req`, sleeping on the clock for injected latency."""
        path = req.path
        if path.startswith("/webhook/"):
            return await self._webhook(req, path[len("/webhook/") :])
        if path in ("/healthz", "/healthz/readiness"):
            return json_answer(200, {"status": "ok"})
        if path.startswith("/webhook-test/"):
            wpath = path[len("/webhook-test/") :].rstrip("/")
            msg = f'The requested webhook "{wpath}" is not registered.'
            return json_answer(404, {"code": 404, "message": msg, "hint": TEST_HINT})
        if path.startswith("/__"):
            return control_answer(self, req)
        return Answer(
            404,
            (("Content-Type", "text/plain; charset=utf-8"),),
            f"Cannot {req.method} {path}".encode(),
        )

    def finish(self, answer: Answer, outcome: str) -> None:
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

    async def _webhook(self, req: FakeRequest, wpath: str) -> Answer:
        wpath = wpath.rstrip("/")
        tenant = tenant_of(req)
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
            answer = status_fault(action.status or 500, action.retry_after)
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
            answer.headers += (("Content-Type", JSON_TYPE),)
            self.finish(answer, "malformed")
            answer.entry = None
        elif action.kind == "truncate" and not answer.body:
            answer.body = json_bytes({"message": "Workflow was started"})
        return answer

    def _n8n(self, req: FakeRequest, wpath: str) -> Answer:
        methods = self._routes.get(wpath)
        if not methods:
            msg = f'The requested webhook "{req.method} {wpath}" is not registered.'
            return json_answer(404, {"code": 404, "message": msg, "hint": PROD_HINT})
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
            return json_answer(404, {"code": 404, "message": msg})
        workflow, spec = found
        refused = check_auth(spec, self.credentials, req)
        if refused is not None:
            return refused
        if spec.response_mode == "onReceived":
            # n8n answers before the run, so nothing the run does can change the answer.
            answer = respond(spec, None)
        else:
            execution = workflow.execute(spec.node, webhook_item(req, wpath, self.base_url))
            answer = respond(spec, execution)
        answer.ran = True
        return answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_asgi(self, scope, receive, send)
