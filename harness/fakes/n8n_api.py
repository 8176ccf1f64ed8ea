"""The parts of n8n's public REST API that monitoring uses, on the fake's execution list.

Enabled by giving the fake API keys (`fake-n8n --api-key KEY`, `FakeN8n(api_keys=...)`);
without any, `/api/v1/...` is Express's 404 page, as with `N8N_PUBLIC_API_DISABLED`.

- `GET /api/v1/executions` (`workflowId`, `status` success|error|waiting, `limit` 1..250
  default 100, `cursor`, `includeData`): `{"data": [...newest first], "nextCursor": ...}`, the
  cursor being base64 of `{"lastId": "<id of the last one>", "limit": n}` while older ones remain
  (`packages/cli/src/public-api/v1/handlers/executions/executions.handler.ts`);
- `GET /api/v1/executions/{id}` (`includeData`): one execution, 404 `{"message":"Not Found"}`;
- `GET /api/v1/workflows` (`active`): `{"data": [...], "nextCursor": null}`.

An execution is `{id, finished, mode, retryOf, retrySuccessId, status, startedAt, stoppedAt,
workflowId, waitTill}` (ids as strings, ISO times in UTC with milliseconds), plus `data`
(`resultData.runData` per node, `lastNodeExecuted`, `error`) with `includeData=true`; the
fake's `runData` entries carry only `data.main`. A request without `X-N8N-API-KEY` answers 401
`'X-N8N-API-KEY' header required`, a wrong key 401 `unauthorized`.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from harness.fakes.n8n_answers import Answer, FakeRequest, json_answer
from harness.fakes.n8n_cors import express_404
from harness.fakes.n8n_executions import ExecutionRecord

if TYPE_CHECKING:
    from harness.fakes.n8n import FakeN8n

__all__ = ["api_answer", "execution_json"]

_STATUSES: Final = (
    "canceled",
    "crashed",
    "error",
    "new",
    "running",
    "success",
    "unknown",
    "waiting",
)
_NOT_FOUND: Final = {"message": "Not Found"}


def api_answer(fake: FakeN8n, req: FakeRequest) -> Answer:
    """Answer `/api/v1/...` from the fake's executions and workflows."""
    if not fake.api_keys:
        return express_404(req.method, req.path)
    key = req.header("x-n8n-api-key")
    if key is None:
        return json_answer(401, {"message": "'X-N8N-API-KEY' header required"})
    if key not in fake.api_keys:
        return json_answer(401, {"message": "unauthorized"})
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(req.query).items()}
    route = req.path[len("/api/v1") :].rstrip("/")
    if req.method == "GET" and route == "/executions":
        return _executions(fake, query)
    if req.method == "GET" and route.startswith("/executions/"):
        record = _record(fake, route[len("/executions/") :])
        if record is None:
            return json_answer(404, _NOT_FOUND)
        return json_answer(200, execution_json(record, include_data=_flag(query, "includeData")))
    if req.method == "GET" and route == "/workflows":
        return _workflows(fake, query)
    return json_answer(404, _NOT_FOUND)


def _record(fake: FakeN8n, raw_id: str) -> ExecutionRecord | None:
    return fake.executions.get(int(raw_id)) if raw_id.isdigit() else None


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "false").lower() == "true"


def _bad(message: str) -> Answer:
    return json_answer(400, {"message": message})


def _executions(fake: FakeN8n, query: Mapping[str, str]) -> Answer:
    last_id: int | None = None
    limit_raw = query.get("limit", "100")
    if "cursor" in query:
        try:
            cursor = json.loads(base64.b64decode(query["cursor"], validate=True))
            last_id, limit_raw = int(cursor["lastId"]), str(cursor["limit"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _bad("An invalid cursor was provided")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 250:
        return _bad("request/query/limit must be an integer from 1 to 250")
    limit = int(limit_raw)
    status = query.get("status")
    if status is not None and status not in _STATUSES:
        return _bad(f"request/query/status must be equal to one of {', '.join(_STATUSES)}")
    wanted = ("error", "crashed") if status == "error" else (status,)
    workflow = query.get("workflowId")
    matching = [
        r
        for r in reversed(list(fake.executions))
        if (status is None or r.status in wanted)
        and (workflow is None or r.workflow_id == workflow)
        and (last_id is None or r.id < last_id)
    ]
    page = matching[:limit]
    include = _flag(query, "includeData")
    next_cursor = None
    if len(matching) > len(page):  # n8n: counts what lies below the last id it returned
        raw = json.dumps({"lastId": str(page[-1].id), "limit": limit}, separators=(",", ":"))
        next_cursor = base64.b64encode(raw.encode()).decode()
    data = [execution_json(r, include_data=include) for r in page]
    return json_answer(200, {"data": data, "nextCursor": next_cursor})


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def execution_json(record: ExecutionRecord, *, include_data: bool = False) -> dict[str, Any]:
    """An execution as n8n's public API writes it."""
    out: dict[str, Any] = {
        "id": str(record.id),
        "finished": record.status == "success",
        "mode": record.mode,
        "retryOf": None,
        "retrySuccessId": None,
        "status": record.status,
        "startedAt": _iso(record.started_at),
        "stoppedAt": _iso(record.stopped_at),
        "workflowId": record.workflow_id,
        "waitTill": None,
    }
    if include_data:
        result: dict[str, Any] = {
            "runData": {
                node: [{"data": {"main": [list(items) for items in outputs]}}]
                for node, outputs in record.run_data.items()
            },
            "lastNodeExecuted": record.last_node,
        }
        if record.error is not None:
            result["error"] = {"message": record.error}
        out["data"] = {"resultData": result}
    return out


def _workflows(fake: FakeN8n, query: Mapping[str, str]) -> Answer:
    active = query.get("active")
    if active is not None and active not in ("true", "false"):
        return _bad("request/query/active must be boolean")
    data = [
        {
            "id": wf.id,
            "name": wf.name,
            "active": wf.active,
            "nodes": wf.raw.get("nodes", []),
            "connections": wf.raw.get("connections", {}),
            "settings": wf.raw.get("settings", {}),
            "staticData": wf.raw.get("staticData"),
            "tags": wf.raw.get("tags", []),
            "versionId": wf.raw.get("versionId"),
        }
        for wf in fake.workflows
        if active is None or wf.active == (active == "true")
    ]
    return json_answer(200, {"data": data, "nextCursor": None})
