"""Reconcile the layer's deliveries with n8n's executions, through n8n's public API.

The layer says a delivery is done when n8n answered 2xx; n8n's execution list says what ran.
`reconcile` compares the two by idempotency key and reports:

- **missing**: deliveries the layer marked delivered with no execution carrying their key;
- **orphans**: executions whose key no delivered row has (n8n ran something the layer gave up
  on, dead-lettered, or never sent), and executions without a key;
- **duplicate effects**: keys whose workflow took effect more than once. An execution takes
  effect unless a Remove Duplicates node of its workflow dropped its item (nothing on the node's
  "Kept" output); a workflow without one takes effect on every execution.

An execution's key is its Webhook node's item: `body.idempotency_key`, else the
`idempotency-key` header. `N8nApi` reads executions (newest first, with their data, page by
page with n8n's cursor) and workflows; everything else here is a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx

__all__ = [
    "Delivery",
    "N8nApi",
    "N8nExecution",
    "Reconciliation",
    "execution_of",
    "reconcile",
    "workflow_roles",
]

_WEBHOOK: Final = "n8n-nodes-base.webhook"
_DEDUPE: Final = "n8n-nodes-base.removeDuplicates"


@dataclass(frozen=True, slots=True)
class Delivery:
    key: str
    tenant_id: str
    workflow: str
    done_at: datetime


@dataclass(frozen=True, slots=True)
class N8nExecution:
    id: str
    workflow_id: str
    status: str
    started_at: datetime
    key: str | None
    effect: bool


@dataclass(frozen=True, slots=True)
class Reconciliation:
    deliveries: int
    executions: int
    missing: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()
    """Execution ids."""
    duplicate_effects: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.orphans or self.duplicate_effects)

    def to_json(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "executions": self.executions,
            "missing": list(self.missing),
            "orphans": list(self.orphans),
            "duplicate_effects": dict(self.duplicate_effects),
            "ok": self.ok,
        }

    @property
    def summary(self) -> str:
        return (
            f"{self.deliveries} deliveries, {self.executions} executions: "
            f"{len(self.missing)} delivered without an execution, {len(self.orphans)} executions "
            f"without a delivery, {len(self.duplicate_effects)} keys with duplicate effects"
        )


def reconcile(deliveries: Iterable[Delivery], executions: Iterable[N8nExecution]) -> Reconciliation:
    """Compare by idempotency key (pure)."""
    delivered = {d.key for d in deliveries}
    runs = list(executions)
    seen = {r.key for r in runs if r.key is not None}
    effects: dict[str, int] = {}
    for run in runs:
        if run.key is not None and run.effect:
            effects[run.key] = effects.get(run.key, 0) + 1
    return Reconciliation(
        deliveries=len(delivered),
        executions=len(runs),
        missing=tuple(sorted(delivered - seen)),
        orphans=tuple(r.id for r in runs if r.key is None or r.key not in delivered),
        duplicate_effects={k: n for k, n in sorted(effects.items()) if n > 1},
    )


def workflow_roles(workflows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[set[str], set[str]]]:
    """Workflow id -> (Webhook node names, Remove Duplicates node names)."""
    roles: dict[str, tuple[set[str], set[str]]] = {}
    for wf in workflows:
        webhooks, dedupes = set(), set()
        for node in wf.get("nodes", []) or []:
            if node.get("disabled"):
                continue
            if node.get("type") == _WEBHOOK:
                webhooks.add(str(node.get("name")))
            elif node.get("type") == _DEDUPE:
                dedupes.add(str(node.get("name")))
        roles[str(wf.get("id"))] = (webhooks, dedupes)
    return roles


def _first_item(run_data: Mapping[str, Any], node: str) -> Mapping[str, Any] | None:
    try:
        item = run_data[node][0]["data"]["main"][0][0]["json"]
    except (KeyError, IndexError, TypeError):
        return None
    return item if isinstance(item, Mapping) else None


def _kept(run_data: Mapping[str, Any], node: str) -> bool:
    try:
        return bool(run_data[node][0]["data"]["main"][0])
    except (KeyError, IndexError, TypeError):
        return False


def execution_of(
    raw: Mapping[str, Any], roles: Mapping[str, tuple[set[str], set[str]]]
) -> N8nExecution:
    """One execution of the public API (with `includeData`) as reconciliation sees it."""
    workflow_id = str(raw.get("workflowId"))
    webhooks, dedupes = roles.get(workflow_id, (set(), set()))
    result = (raw.get("data") or {}).get("resultData") or {}
    run_data = result.get("runData") or {}
    key: str | None = None
    for node in sorted(webhooks):
        item = _first_item(run_data, node)
        if item is None:
            continue
        body = item.get("body")
        value = body.get("idempotency_key") if isinstance(body, Mapping) else None
        if value is None and isinstance(item.get("headers"), Mapping):
            value = item["headers"].get("idempotency-key")
        if value is not None:
            key = str(value)
            break
    ran = [d for d in dedupes if d in run_data]
    effect = any(_kept(run_data, d) for d in ran) if dedupes else True
    started = str(raw.get("startedAt", "1970-01-01T00:00:00.000Z")).replace("Z", "+00:00")
    return N8nExecution(
        id=str(raw.get("id")),
        workflow_id=workflow_id,
        status=str(raw.get("status")),
        started_at=datetime.fromisoformat(started),
        key=key,
        effect=effect,
    )


class N8nApi:
    """n8n's public API, the parts reconciliation reads."""

    def __init__(self, base_url: str, api_key: str, *, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=30)
        self._headers = {"X-N8N-API-KEY": api_key, "Accept": "application/json"}

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        response = self._client.get(path, params=dict(params), headers=self._headers)
        if response.status_code == 401:
            raise PermissionError(f"n8n refused the API key: {response.text[:200]}")
        response.raise_for_status()
        return response.json()

    def workflows(self) -> list[Mapping[str, Any]]:
        data: list[Mapping[str, Any]] = self._get("/api/v1/workflows", {})["data"]
        return data

    def executions(self, since: datetime | None = None) -> Iterator[Mapping[str, Any]]:
        """Executions newest first, with their data, down to `since`."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"includeData": "true", "limit": 250}
            if cursor is not None:
                params["cursor"] = cursor
            page = self._get("/api/v1/executions", params)
            for raw in page["data"]:
                started = datetime.fromisoformat(str(raw["startedAt"]).replace("Z", "+00:00"))
                if since is not None and started < since:
                    return
                yield raw
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def close(self) -> None:
        self._client.close()


def executions_for(api: N8nApi, since: datetime | None) -> Sequence[N8nExecution]:
    roles = workflow_roles(api.workflows())
    return [execution_of(raw, roles) for raw in api.executions(since)]
