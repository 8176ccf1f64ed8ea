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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import httpx

from harness.data import data_path
from harness.fakes.faults import (
    Decision,
    FaultEngine,
    FaultProfile,
    load_profile,
    parse_profile,
)
from harness.fakes.journal import Journal, JournalEntry
from harness.fakes.n8n_answers import (
    JSON_TYPE,
    PROD_HINT,
    TEST_HINT,
    Answer,
    FakeRequest,
    Headers,
    check_auth,
    json_answer,
    json_bytes,
    respond,
    routes_of,
    status_fault,
    tenant_of,
    webhook_item,
)
from harness.fakes.n8n_api import api_answer
from harness.fakes.n8n_asgi import Receive, Scope, Send, serve_asgi
from harness.fakes.n8n_bodies import BodyError, parse_body
from harness.fakes.n8n_control import control_answer
from harness.fakes.n8n_cors import WEBHOOK_METHODS, cors_headers, express_404, preflight
from harness.fakes.n8n_dedupe import DedupeHistory
from harness.fakes.n8n_executions import ExecutionLog, LazyRunData
from harness.fakes.n8n_export import (
    Credential,
    Credentials,
    Execution,
    Workflow,
    credentials_beside,
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
    """The fake's core and its ASGI app: routing, n8n's answers, faults, journal; n8n's state
    (`dedupe`: the Remove Duplicates history, `executions`) in memory or `data_dir`."""

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
        data_dir: str | Path | None = None,
        api_keys: Iterable[str] = (),
    ) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.api_keys = frozenset(api_keys)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.dedupe = DedupeHistory(data_dir)
        self.executions = ExecutionLog(data_dir)
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
        data_dir: str | Path | None = None,
        api_keys: Iterable[str] = (),
        beside: bool = True,
    ) -> FakeN8n:
        """Build from exported workflow files, a credentials export and a fault profile file;
        `data_dir` keeps the dedupe history and the execution list across restarts.

        Without `credentials`, a `credentials.json` in a workflows directory is loaded with it
        (`beside=False` turns that off, for callers that give credentials another way).
        """
        paths = DEFAULT_WORKFLOWS if workflows is None else workflows
        loaded = load_workflows(paths, lenient=lenient, active=active)
        if credentials is not None:
            creds: Credentials | None = load_credentials(credentials)
        elif workflows is None:
            creds = Credentials(DEFAULT_CREDENTIALS)
        else:
            creds = credentials_beside(paths) if beside else None
        return cls(
            loaded,
            credentials=creds,
            faults=_profile_of(faults),
            clock=clock,
            seed=seed,
            data_dir=data_dir,
            api_keys=api_keys,
        )

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

    def close(self) -> None:
        """Close the data directory's files (the served fake does this when it stops)."""
        self.dedupe.close()
        self.executions.close()

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
        """Decide the answer to `req`, sleeping on the clock for injected latency; a caller that
        cancels the wait (its deadline) ends the call as `gave_up`, and the workflow still runs."""
        path = req.path
        if path.startswith("/webhook/") and path != "/webhook/":
            return await self._webhook(req, path[len("/webhook/") :])
        if path in ("/healthz", "/healthz/readiness"):
            return json_answer(200, {"status": "ok"})
        if path.startswith("/webhook-test/") and path != "/webhook-test/":
            wpath = path[len("/webhook-test/") :].rstrip("/")
            msg = f'The requested webhook "{wpath}" is not registered.'
            return json_answer(404, {"code": 404, "message": msg, "hint": TEST_HINT})
        if path.startswith("/__"):
            return control_answer(self, req)
        if path.startswith("/api/v1/"):
            return api_answer(self, req)
        return express_404(req.method, path)

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
                dropped=answer.dropped,
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
            began = self.clock.monotonic()
            try:
                await self.clock.sleep(decision.latency)
            except asyncio.CancelledError:
                self._gave_up(req, wpath, entry, decision, self.clock.monotonic() - began)
                raise
        action = decision.action
        if action is not None and action.kind == "status":
            answer = status_fault(action.status or 500, action.retry_after)
            answer.fault = action.label
        else:
            answer = self._n8n(req, wpath, runs=decision.runs_workflow)
        answer.entry, answer.decision = entry, decision
        if action is None or action.kind == "status":
            self.journal.finish(
                entry,
                outcome="answered",
                status=answer.status,
                fault=answer.fault,
                latency=decision.latency,
                ran=answer.ran,
                dropped=answer.dropped,
            )
            answer.entry = None
            return answer
        answer.ran = answer.ran and decision.runs_workflow
        answer.dropped = answer.dropped and answer.ran
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

    def _gave_up(
        self, req: FakeRequest, wpath: str, entry: JournalEntry, decision: Decision, waited: float
    ) -> None:
        """The client left during the latency: its call ends now, and the workflow still runs
        (n8n does not cancel a run when the caller hangs up), unless a status fault stands in
        front of n8n."""
        action = decision.action
        ran = dropped = False
        if action is None or action.kind != "status":
            answer = self._n8n(req, wpath, runs=decision.runs_workflow)
            ran, dropped = answer.ran, answer.dropped
        self.journal.finish(entry, outcome="gave_up", latency=waited, ran=ran, dropped=dropped)

    def _n8n(self, req: FakeRequest, wpath: str, *, runs: bool = True) -> Answer:
        """n8n's answer; `runs=False` (a fault in front of n8n) leaves no execution behind."""
        if req.method != "OPTIONS" and req.method not in WEBHOOK_METHODS:
            return json_answer(
                500, {"code": 0, "message": f"The method {req.method} is not supported."}
            )
        routes = self._routes.get(wpath, {})
        specs = {method: spec for method, (_, spec) in routes.items()}
        cors: Headers = ()
        origin = req.header("origin")
        if origin is not None:
            wanted = (
                req.header("access-control-request-method")
                if req.method == "OPTIONS"
                else req.method
            )
            cors = cors_headers(origin, req.method, wanted, specs)
            if wanted and wanted not in routes:  # n8n looks the webhook up for its options
                answer = _not_found(
                    req.method if req.method != "OPTIONS" else wanted, wpath, list(routes)
                )
                answer.headers = (*answer.headers, *cors)
                return answer
        if req.method == "OPTIONS":
            return preflight(cors, req.header("access-control-request-headers"))
        answer = _route(self, req, wpath, routes, runs)
        answer.headers = (*answer.headers, *cors)
        return answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_asgi(self, scope, receive, send)


def _profile_of(
    faults: str | Path | FaultProfile | Mapping[str, Any] | None,
) -> FaultProfile | None:
    if isinstance(faults, str | Path):
        return load_profile(faults)
    if isinstance(faults, Mapping):
        return parse_profile(faults)
    return faults


def _route(
    fake: FakeN8n,
    req: FakeRequest,
    wpath: str,
    routes: Mapping[str, tuple[Workflow, Any]],
    runs: bool,
) -> Answer:
    found = routes.get(req.method)
    if found is None:
        return _not_found(req.method, wpath, list(routes))
    workflow, spec = found
    try:  # n8n parses the body before the Webhook node checks auth
        body = parse_body(
            req.body, req.header("content-type"), req.header("content-encoding"), req.json_body
        )
    except BodyError as exc:
        error: dict[str, Any] = {
            "code": 422 if exc.status == 422 else 0,
            "message": exc.message,
        }
        if exc.hint is not None:
            error["hint"] = exc.hint
        return json_answer(exc.status, error)
    refused = check_auth(spec, fake.credentials, req)
    if refused is not None:
        return refused
    item = webhook_item(req, wpath, fake.base_url, body.value)
    if not runs:  # only the answer's shape matters: run on a throwaway history
        return respond(spec, workflow.execute(spec.node, item))
    if spec.response_mode == "onReceived" and workflow.inert_last is not None:
        _list_inert(fake, workflow, spec.node, item)  # the run cannot change the answer
        answer = respond(spec, None)
    else:  # with onReceived n8n answers before the run: the run does not change the answer
        execution = _run_recorded(fake, workflow, spec.node, item)
        answer = respond(spec, execution)
        answer.dropped = bool(execution.dropped_keys) and not execution.kept_keys
    answer.ran = True
    return answer


def _list_inert(fake: FakeN8n, workflow: Workflow, node: str, item: dict[str, Any]) -> None:
    """List the run of a workflow that cannot fail nor leave state; run it if its data is read."""
    now = fake.clock.now().timestamp()
    fake.executions.add(
        workflow_id=workflow.id,
        status="success",
        started_at=now,
        stopped_at=now,
        last_node=workflow.inert_last or node,
        run_data=LazyRunData(lambda: workflow.execute(node, item).run_data),
    )


def _run_recorded(fake: FakeN8n, workflow: Workflow, node: str, item: dict[str, Any]) -> Execution:
    """Run `workflow` from its Webhook `node` on the fake's history; list the execution."""
    started = fake.clock.now().timestamp()
    execution = workflow.execute(node, item, dedupe=fake.dedupe)
    fake.executions.add(
        workflow_id=workflow.id,
        status="error" if execution.error is not None else "success",
        started_at=started,
        stopped_at=fake.clock.now().timestamp(),
        last_node=execution.last_node,
        error=execution.error,
        kept_keys=execution.kept_keys,
        dropped_keys=execution.dropped_keys,
        run_data=execution.run_data,
    )
    return execution


def _not_found(method: str, wpath: str, methods: list[str]) -> Answer:
    """n8n's WebhookNotFoundError for `method` on `wpath` (registered for `methods`)."""
    if not methods:
        msg = f'The requested webhook "{method} {wpath}" is not registered.'
        return json_answer(404, {"code": 404, "message": msg, "hint": PROD_HINT})
    listed = methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + f" or {methods[-1]}"
    msg = (
        f"This webhook is not registered for {method} requests. "
        f"Did you mean to make a {listed} request?"
    )
    return json_answer(404, {"code": 404, "message": msg})
