"""n8n's answers on the wire: the request both adapters hand the core, the answer it decides,
and how n8n writes its JSON, its errors, its auth refusals and a workflow's response.

Everything here is a pure function of its arguments; the core (`harness.fakes.n8n`) adds the
clock, the faults and the journal.
"""

from __future__ import annotations

import base64
import binascii
import http
import json
import math
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from harness.fakes.faults import Decision
from harness.fakes.journal import JournalEntry
from harness.fakes.n8n_export import (
    Credentials,
    Execution,
    Respond,
    WebhookSpec,
    Workflow,
    WorkflowError,
)

__all__ = [
    "Answer",
    "FakeRequest",
    "Headers",
    "check_auth",
    "json_answer",
    "json_bytes",
    "respond",
    "routes_of",
    "status_fault",
    "tenant_of",
    "webhook_item",
]


JSON_TYPE: Final = "application/json; charset=utf-8"
_WWW_AUTH: Final = ("WWW-Authenticate", 'Basic realm="Webhook"')
PROD_HINT: Final = (
    "The workflow must be active for a production URL to run successfully. You can activate the "
    "workflow using the toggle in the top-right of the editor. Note that unlike test URL calls, "
    "production URL calls aren't shown on the canvas (only in the executions list)"
)
TEST_HINT: Final = (
    "Click the 'Execute workflow' button on the canvas, then try again. (In test mode, the "
    "webhook only works for one call after you click this button)"
)
_FAULT_BODIES: Final = {
    500: {"message": "Error in workflow"},
    503: {"code": 503, "message": "Database is not ready!"},
}
_STARTED: Final = b'{"message":"Workflow was started"}'
_JSON_NO_BODY: Final = (("Content-Type", "application/json"),)
"""Express's `res.json(undefined)`: the type without a charset (no string was sent), no body."""
NO_ITEM: Final = "No item to return was found"
"""n8n's error when `lastNode` + `firstEntryJson` finds no item in the last node's output."""

_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """A request as both adapters hand it to the core; header names are lower case."""

    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes = b""
    _index: dict[str, str] = field(init=False, repr=False, compare=False)

    _json: list[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # First value wins, as a scan from the front would find it.
        object.__setattr__(self, "_index", dict(reversed(self.headers)))
        object.__setattr__(self, "_json", [])

    def header(self, name: str) -> str | None:
        return self._index.get(name)

    def json_body(self) -> tuple[bool, Any]:
        """(parsed, value) of the body read as UTF-8 JSON, parsed once per request."""
        if not self._json:
            try:
                value = json.loads(self.body.decode("utf-8", "replace"), parse_constant=_no_nan)
                self._json.append((True, value))
            except (ValueError, RecursionError):
                self._json.append((False, None))
        result: tuple[bool, Any] = self._json[0]
        return result


@dataclass(slots=True)
class Answer:
    status: int
    headers: Headers
    body: bytes
    fault: str | None = None
    hang_for: float = 0.0
    entry: JournalEntry | None = None
    decision: Decision | None = None
    ran: bool = False
    dropped: bool = False
    """The run's item was dropped by a Remove Duplicates node (see `JournalEntry.dropped`)."""


def _no_nan(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_bytes(value: object) -> bytes:
    """JSON as Express's `res.json` writes it: compact, UTF-8 (non-ASCII text as is, a lone
    surrogate as a `\\udXXX` escape, as `JSON.stringify` writes it), integral floats
    without `.0`."""
    text = json.dumps(_js_numbers(value), separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def _js_numbers(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_js_numbers(v) for v in value]
    return value


def json_answer(status: int, value: object, *extra: tuple[str, str]) -> Answer:
    return Answer(status, (("Content-Type", JSON_TYPE), *extra), json_bytes(value))


def check_auth(spec: WebhookSpec, credentials: Credentials, req: FakeRequest) -> Answer | None:
    """n8n's header and basic auth on a webhook node: None to go on, or its refusal."""
    if spec.credential is None:
        return None
    cred = credentials.find(spec.credential)
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


def routes_of(workflows: Sequence[Workflow]) -> dict[str, dict[str, tuple[Workflow, WebhookSpec]]]:
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


def tenant_of(req: FakeRequest) -> str:
    tenant = req.header("x-tenant-id")
    if tenant is not None:
        return tenant
    if req.body[:1] == b"{" and b'"tenant_id"' in req.body:
        ok, body = req.json_body()
        value = body.get("tenant_id") if ok and isinstance(body, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return ""


def webhook_item(req: FakeRequest, wpath: str, base_url: str, body: Any) -> dict[str, Any]:
    """The item n8n's Webhook node gives its workflow (`body` as `n8n_bodies` parsed it)."""
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


def respond(spec: WebhookSpec, execution: Execution | None) -> Answer:
    """What n8n answers for `spec`'s response settings once `execution` ran (None: not run)."""
    code = spec.response_code
    if spec.response_mode == "onReceived" or execution is None:
        if spec.no_response_body:
            return Answer(code, (), b"")
        return Answer(code, (("Content-Type", JSON_TYPE),), _STARTED)
    if execution.error is not None:
        return json_answer(500, {"message": "Error in workflow"})
    if spec.response_mode == "responseNode":
        if execution.respond is None:
            # The run ended without reaching Respond to Webhook (e.g. Remove Duplicates dropped
            # the call): an empty body typed with a charset, as recorded on n8n 2.8.4.
            return Answer(code, (("Content-Type", JSON_TYPE),), b"")
        return _node_answer(execution.respond)
    items = [item.get("json", item) for item in execution.items]
    if spec.response_data == "noData":
        return Answer(code, _JSON_NO_BODY, b"")  # `res.json(undefined)`
    if spec.response_data == "allEntries":
        return json_answer(code, items)
    if not items:  # e.g. Remove Duplicates dropped the call: the run succeeded, the answer fails
        return json_answer(500, {"code": 0, "message": NO_ITEM})
    return json_answer(code, items[0])


def _node_answer(r: Respond) -> Answer:
    if r.kind == "noData":
        return Answer(r.status, r.headers, b"")
    if r.kind == "text":
        ctype = ("Content-Type", "text/html; charset=utf-8")
        return Answer(r.status, (ctype, *r.headers), str(r.body).encode())
    headers = tuple(h for h in r.headers if h[0].lower() != "content-type")
    given = [h for h in r.headers if h[0].lower() == "content-type"]
    return Answer(
        r.status,
        (given[0] if given else ("Content-Type", JSON_TYPE), *headers),
        json_bytes(r.body),
    )


def status_fault(status: int, retry_after: float | None) -> Answer:
    body = _FAULT_BODIES.get(status, {"code": status, "message": http.HTTPStatus(status).phrase})
    if status in (429, 503):
        seconds = str(max(0, math.ceil(retry_after if retry_after is not None else 1.0)))
        return json_answer(status, body, ("Retry-After", seconds))
    return json_answer(status, body)


def _auth_refusal(status: int, text: str) -> Answer:
    # n8n writes these with writeHead + end: no Content-Type, just the realm header.
    return Answer(status, (_WWW_AUTH,), text.encode())


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
