"""Workflows and credentials from n8n's own export format, and the node subset the fake runs.

Reads what `n8n export:workflow` writes (one workflow object, an array of them, or a directory of
`*.json` files) and what `n8n export:credentials --decrypted` writes. The fake registers each
active workflow's Webhook nodes and, for response modes `lastNode` and `responseNode`, evaluates
this subset of nodes:

- Webhook (`n8n-nodes-base.webhook`): `httpMethod` (default GET, or a list with
  `multipleMethods`), `path`, `responseMode` (onReceived, lastNode, responseNode),
  `responseData` (firstEntryJson, allEntries, noData), `responseCode` / `options.responseCode`,
  `options.noResponseBody`, `authentication` (none, headerAuth, basicAuth);
- No Operation (`noOp`): passes its input on;
- Set (`set`): fixed values only: v1/v2 `values` (+ `keepOnlySet`), v3 manual `fields.values` or
  `assignments.assignments`, v3 raw `jsonOutput`; `includeOtherFields`/`include: all` merges input;
- Respond to Webhook (`respondToWebhook`): `respondWith` json, text, noData, firstIncomingItem or
  allIncomingItems, with `options.responseCode` and `options.responseHeaders`;
- Stop and Error (`stopAndError`): fails the execution;
- Sticky Note: ignored.

Anything else (another node type, an expression `={{ ... }}`) is refused at load with the file,
node and type named; with `lenient=True` such a node passes its input through instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "SUPPORTED_NODE_TYPES",
    "Credential",
    "CredentialRef",
    "Credentials",
    "Execution",
    "Node",
    "Respond",
    "WebhookSpec",
    "Workflow",
    "WorkflowError",
    "load_credentials",
    "load_workflows",
    "parse_workflow",
]

_WEBHOOK: Final = "n8n-nodes-base.webhook"
_NOOP: Final = "n8n-nodes-base.noOp"
_SET: Final = "n8n-nodes-base.set"
_RESPOND: Final = "n8n-nodes-base.respondToWebhook"
_STOP: Final = "n8n-nodes-base.stopAndError"
_STICKY: Final = "n8n-nodes-base.stickyNote"

SUPPORTED_NODE_TYPES: Final = frozenset({_WEBHOOK, _NOOP, _SET, _RESPOND, _STOP, _STICKY})
_METHODS: Final = frozenset({"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"})
_RESPONSE_MODES: Final = frozenset({"onReceived", "lastNode", "responseNode"})
_RESPONSE_DATA: Final = frozenset({"firstEntryJson", "allEntries", "noData"})
_AUTH_TYPES: Final = {"none": None, "headerAuth": "httpHeaderAuth", "basicAuth": "httpBasicAuth"}

Item = dict[str, Any]


class WorkflowError(ValueError):
    """A workflow or credentials export the fake cannot use; names the file and the node."""


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """A node's reference to a credential: by id first, then by name, as n8n resolves it."""

    type: str
    id: str | None
    name: str | None

    def describe(self) -> str:
        return f"{self.type} credential {self.name or self.id!r}"


@dataclass(frozen=True, slots=True)
class Credential:
    """A decrypted credential: `httpHeaderAuth` {name, value}, `httpBasicAuth` {user, password}."""

    id: str
    name: str
    type: str
    data: Mapping[str, str]


class Credentials:
    """The credentials the fake checks webhook auth against."""

    def __init__(self, items: Iterable[Credential] = ()) -> None:
        self._items = list(items)

    def __iter__(self) -> Iterator[Credential]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, credential: Credential) -> None:
        self._items.append(credential)

    def find(self, ref: CredentialRef) -> Credential | None:
        for by_id in (True, False):
            for cred in self._items:
                if cred.type != ref.type:
                    continue
                if by_id and ref.id is not None and cred.id == ref.id:
                    return cred
                if not by_id and ref.name is not None and cred.name == ref.name:
                    return cred
        return None


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    type: str
    type_version: float
    parameters: Mapping[str, Any]
    disabled: bool = False
    credentials: Mapping[str, Any] = field(default_factory=dict)
    passthrough: bool = False
    """A node outside the subset, kept because the workflow was loaded leniently."""


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """One registered webhook: what the Webhook node's parameters say."""

    workflow: str
    node: str
    path: str
    methods: tuple[str, ...]
    response_mode: str = "onReceived"
    response_data: str = "firstEntryJson"
    response_code: int = 200
    no_response_body: bool = False
    authentication: str = "none"
    credential: CredentialRef | None = None


@dataclass(frozen=True, slots=True)
class Respond:
    """What a Respond to Webhook node answers."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: Any
    kind: str
    """`json` (body is a JSON value), `text` (a string) or `noData`."""


@dataclass(frozen=True, slots=True)
class Execution:
    """The result of running a workflow from one of its Webhook nodes."""

    items: tuple[Item, ...]
    last_node: str
    error: str | None = None
    respond: Respond | None = None


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    active: bool
    source: str
    nodes: Mapping[str, Node]
    connections: Mapping[str, tuple[str, ...]]
    """Node name -> the nodes its main outputs feed, in n8n's (v1) execution order."""
    webhooks: tuple[WebhookSpec, ...] = field(default=())

    def execute(self, webhook_node: str, item: Item) -> Execution:
        """Run the workflow from `webhook_node` with the webhook's item, depth first."""
        state = _Run(last=webhook_node, items=(item,))
        self._visit(webhook_node, (item,), state, depth=0)
        return Execution(state.items, state.last, state.error, state.respond)

    def _visit(self, name: str, items: tuple[Item, ...], state: _Run, depth: int) -> None:
        if depth > len(self.nodes):
            state.error = f"workflow {self.name!r} loops through node {name!r}"
            return
        for target in self.connections.get(name, ()):
            if state.error is not None:
                return
            node = self.nodes[target]
            out = _run_node(node, items, state)
            state.last = target
            if out is None:
                return
            state.items = out
            self._visit(target, out, state, depth + 1)


@dataclass(slots=True)
class _Run:
    last: str
    items: tuple[Item, ...]
    error: str | None = None
    respond: Respond | None = None


def _run_node(node: Node, items: tuple[Item, ...], state: _Run) -> tuple[Item, ...] | None:
    """The node's output items, or None when it failed the execution (see `state.error`)."""
    if node.disabled or node.passthrough or node.type == _NOOP:
        return items
    p = node.parameters
    if node.type == _STOP:
        if p.get("errorType", "errorMessage") == "errorObject":
            state.error = str(p.get("errorObject", "{}"))
        else:
            state.error = str(p.get("errorMessage", "")) or "Workflow stopped"
        return None
    if node.type == _SET:
        return tuple({"json": _apply_set(node, item.get("json", {}))} for item in items or ({},))
    if node.type == _RESPOND:
        if state.respond is None:
            state.respond = _respond(node, items)
        return items
    return items


def _respond(node: Node, items: tuple[Item, ...]) -> Respond:
    p = node.parameters
    options = p.get("options", {})
    code = int(options.get("responseCode", 200))
    entries = options.get("responseHeaders", {}).get("entries", [])
    headers = tuple((str(e["name"]), str(e["value"])) for e in entries)
    how = p.get("respondWith", "firstIncomingItem")
    if how == "json":
        body = p.get("responseBody", "{}")
        return Respond(code, headers, json.loads(body) if isinstance(body, str) else body, "json")
    if how == "text":
        return Respond(code, headers, str(p.get("responseBody", "")), "text")
    if how == "noData":
        return Respond(code, headers, None, "noData")
    if how == "allIncomingItems":
        return Respond(code, headers, [i.get("json", {}) for i in items], "json")
    return Respond(code, headers, items[0].get("json", {}) if items else {}, "json")


def _apply_set(node: Node, item: Item) -> Item:
    p = node.parameters
    dot = bool(p.get("options", {}).get("dotNotation", True))
    if node.type_version < 3:
        out: Item = {} if p.get("keepOnlySet", False) else _copy(item)
        for kind in ("string", "number", "boolean"):
            for entry in p.get("values", {}).get(kind, []):
                _assign(out, str(entry["name"]), entry.get("value"), dot)
        return out
    merge = bool(p.get("includeOtherFields", False)) and p.get("include", "all") == "all"
    out = _copy(item) if merge else {}
    if p.get("mode", "manual") == "raw":
        raw = p.get("jsonOutput", "{}")
        out.update(json.loads(raw) if isinstance(raw, str) else dict(raw))
        return out
    for name, value in _set_fields(p):
        _assign(out, name, value, dot)
    return out


def _set_fields(p: Mapping[str, Any]) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = []
    for a in p.get("assignments", {}).get("assignments", []):
        fields.append((str(a["name"]), _typed(a.get("value"), str(a.get("type", "string")))))
    for f in p.get("fields", {}).get("values", []):
        kind = str(f.get("type", "stringValue"))
        fields.append((str(f["name"]), _typed(f.get(kind), kind.removesuffix("Value"))))
    return fields


def _typed(value: Any, kind: str) -> Any:
    if kind == "number" and isinstance(value, str):
        number = float(value)
        return int(number) if number.is_integer() else number
    if kind == "boolean" and isinstance(value, str):
        return value.strip().lower() == "true"
    if kind in ("array", "object") and isinstance(value, str):
        return json.loads(value)
    return value


def _assign(out: Item, name: str, value: Any, dot: bool) -> None:
    parts = name.split(".") if dot else [name]
    target = out
    for part in parts[:-1]:
        nested = target.get(part)
        if not isinstance(nested, dict):
            nested = target[part] = {}
        target = nested
    target[parts[-1]] = value


def _copy(item: Item) -> Item:
    copied: Item = json.loads(json.dumps(item))
    return copied


# --- loading -------------------------------------------------------------------------------


def load_workflows(
    path: str | Path | Sequence[str | Path], *, lenient: bool = False, active: bool | None = None
) -> tuple[Workflow, ...]:
    """Workflows from a file (one export object or an array) or a directory of `*.json` files.

    `active` overrides every workflow's `active` flag when given.
    """
    if isinstance(path, str | Path):
        paths: list[Path] = [Path(path)]
    else:
        paths = [Path(p) for p in path]
    out: list[Workflow] = []
    for p in paths:
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise WorkflowError(f"{p}: no *.json workflow exports in this directory")
        for file in files:
            data = _read_json(file)
            items = data if isinstance(data, list) else [data]
            for index, raw in enumerate(items):
                source = str(file) if len(items) == 1 else f"{file}[{index}]"
                out.append(parse_workflow(raw, source=source, lenient=lenient, active=active))
    return tuple(out)


def load_credentials(path: str | Path) -> Credentials:
    """Credentials from `n8n export:credentials --decrypted` output (an array or one object)."""
    source = str(path)
    data = _read_json(Path(path))
    items = data if isinstance(data, list) else [data]
    creds = Credentials()
    for index, raw in enumerate(items):
        where = f"{source}[{index}]"
        if not isinstance(raw, Mapping):
            raise WorkflowError(f"{where}: a credential must be an object")
        for key in ("id", "name", "type", "data"):
            if key not in raw:
                raise WorkflowError(f"{where}: credential is missing {key!r}")
        name = str(raw["name"])
        if isinstance(raw["data"], str):
            raise WorkflowError(
                f"{where}: credential {name!r} is encrypted: export it with "
                "`n8n export:credentials --decrypted`"
            )
        if not isinstance(raw["data"], Mapping):
            raise WorkflowError(f"{where}: credential {name!r}: data must be an object")
        ctype = str(raw["type"])
        needed = {"httpHeaderAuth": ("name", "value"), "httpBasicAuth": ("user", "password")}
        for key in needed.get(ctype, ()):
            if key not in raw["data"]:
                raise WorkflowError(f"{where}: credential {name!r} ({ctype}): data.{key} missing")
        data_map = {str(k): str(v) for k, v in raw["data"].items()}
        creds.add(Credential(str(raw["id"]), name, ctype, data_map))
    return creds


def parse_workflow(
    raw: object, *, source: str = "<workflow>", lenient: bool = False, active: bool | None = None
) -> Workflow:
    """One workflow export object -> `Workflow`; refuses what the fake cannot run faithfully."""
    if not isinstance(raw, Mapping):
        raise WorkflowError(f"{source}: a workflow export must be a JSON object")
    for key in ("nodes", "connections"):
        if key not in raw:
            raise WorkflowError(f"{source}: not an n8n workflow export: {key!r} is missing")
    name = str(raw.get("name", Path(source).stem))
    if not isinstance(raw["nodes"], list):
        raise WorkflowError(f"{source}: 'nodes' must be a list")
    nodes: dict[str, Node] = {}
    for index, rn in enumerate(raw["nodes"]):
        node = _parse_node(rn, f"{source}: workflow {name!r}: nodes[{index}]", lenient)
        if node.type == _STICKY:
            continue
        if node.name in nodes:
            raise WorkflowError(f"{source}: workflow {name!r}: two nodes named {node.name!r}")
        nodes[node.name] = node
    connections = _parse_connections(raw["connections"], nodes, f"{source}: workflow {name!r}")
    webhooks = tuple(
        _parse_webhook(node, name, f"{source}: workflow {name!r}: node {node.name!r}")
        for node in nodes.values()
        if node.type == _WEBHOOK and not node.disabled
    )
    if not webhooks:
        raise WorkflowError(f"{source}: workflow {name!r} has no enabled Webhook node")
    is_active = bool(raw.get("active", False)) if active is None else active
    wid = str(raw.get("id", name))
    return Workflow(wid, name, is_active, source, nodes, connections, webhooks)


def _parse_node(raw: object, where: str, lenient: bool) -> Node:
    if not isinstance(raw, Mapping) or "name" not in raw or "type" not in raw:
        raise WorkflowError(f"{where}: a node needs 'name' and 'type'")
    name, ntype = str(raw["name"]), str(raw["type"])
    params = raw.get("parameters", {})
    if not isinstance(params, Mapping):
        raise WorkflowError(f"{where} ({name!r}): 'parameters' must be an object")
    version = float(raw.get("typeVersion", 1))
    disabled = bool(raw.get("disabled", False))
    creds = raw.get("credentials", {})
    node = Node(name, ntype, version, params, disabled, creds if isinstance(creds, Mapping) else {})
    if ntype == _STICKY:
        return node
    if ntype not in SUPPORTED_NODE_TYPES:
        if lenient and ntype != _WEBHOOK:
            return Node(name, ntype, version, params, disabled, node.credentials, True)
        supported = ", ".join(sorted(SUPPORTED_NODE_TYPES - {_STICKY}))
        raise WorkflowError(
            f"{where}: node {name!r} has type {ntype!r}, which the fake n8n does not run "
            f"(supported: {supported}; load with lenient=True / --lenient to pass it through)"
        )
    expression = _find_expression(params)
    if expression is not None and not disabled:
        if lenient and ntype != _WEBHOOK:
            return Node(name, ntype, version, params, disabled, node.credentials, True)
        raise WorkflowError(
            f"{where}: node {name!r} ({ntype}): parameter {expression!r} is an expression; "
            "the fake n8n evaluates fixed values only"
        )
    if ntype == _SET and not disabled:
        _check_set(node, where)
    if ntype == _RESPOND and not disabled:
        _check_respond(node, where)
    return node


def _find_expression(value: object, key: str = "") -> str | None:
    if isinstance(value, str):
        return key if value.startswith("=") else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _find_expression(v, f"{key}.{k}" if key else str(k))
            if found is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_expression(v, f"{key}[{i}]")
            if found is not None:
                return found
    return None


def _check_set(node: Node, where: str) -> None:
    p = node.parameters
    if node.type_version >= 3 and p.get("mode", "manual") == "raw":
        raw = p.get("jsonOutput", "{}")
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise WorkflowError(
                f"{where}: node {node.name!r}: jsonOutput is not JSON: {exc}"
            ) from exc
        if not isinstance(parsed, Mapping):
            raise WorkflowError(f"{where}: node {node.name!r}: jsonOutput must be a JSON object")
    elif node.type_version >= 3 and p.get("mode", "manual") != "manual":
        raise WorkflowError(f"{where}: node {node.name!r}: Set mode {p.get('mode')!r} unsupported")
    if (
        node.type_version >= 3
        and p.get("includeOtherFields", False)
        and p.get("include", "all") != "all"
    ):
        problem = f"include {p.get('include')!r} unsupported (only 'all')"
        raise WorkflowError(f"{where}: node {node.name!r}: {problem}")
    try:
        _apply_set(node, {})
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkflowError(f"{where}: node {node.name!r}: cannot apply Set fields: {exc}") from exc


def _check_respond(node: Node, where: str) -> None:
    how = node.parameters.get("respondWith", "firstIncomingItem")
    allowed = ("json", "text", "noData", "firstIncomingItem", "allIncomingItems")
    if how not in allowed:
        raise WorkflowError(
            f"{where}: node {node.name!r}: respondWith {how!r} unsupported "
            f"(use {', '.join(allowed)})"
        )
    try:
        _respond(node, ({},))
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkflowError(f"{where}: node {node.name!r}: bad response settings: {exc}") from exc


def _parse_connections(
    raw: object, nodes: Mapping[str, Node], where: str
) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise WorkflowError(f"{where}: 'connections' must be an object")
    out: dict[str, tuple[str, ...]] = {}
    for source_name, by_type in raw.items():
        if source_name not in nodes:
            continue  # a sticky note or a dangling entry n8n itself ignores
        if not isinstance(by_type, Mapping):
            raise WorkflowError(f"{where}: connections[{source_name!r}] must be an object")
        targets: list[str] = []
        for output in by_type.get("main", []) or []:
            for link in output or []:
                target = str(link.get("node")) if isinstance(link, Mapping) else ""
                if target not in nodes:
                    raise WorkflowError(
                        f"{where}: connection from {source_name!r} to unknown node {target!r}"
                    )
                targets.append(target)
        out[str(source_name)] = tuple(targets)
    return out


def _parse_webhook(node: Node, workflow: str, where: str) -> WebhookSpec:
    p = node.parameters
    method = p.get("httpMethod", "GET")
    methods = tuple(method) if isinstance(method, list) else (method,)
    for m in methods:
        if m not in _METHODS:
            raise WorkflowError(f"{where}: httpMethod {m!r} is not one of {sorted(_METHODS)}")
    path = str(p.get("path", "") or "").strip("/")
    if not path:
        raise WorkflowError(f"{where}: the Webhook node has no 'path'")
    if any(seg.startswith(":") for seg in path.split("/")):
        raise WorkflowError(f"{where}: dynamic webhook path {path!r} is outside the fake's subset")
    mode = str(p.get("responseMode", "onReceived"))
    if mode not in _RESPONSE_MODES:
        raise WorkflowError(
            f"{where}: responseMode {mode!r} unsupported ({sorted(_RESPONSE_MODES)})"
        )
    data = str(p.get("responseData", "firstEntryJson"))
    if mode == "lastNode" and data not in _RESPONSE_DATA:
        raise WorkflowError(
            f"{where}: responseData {data!r} unsupported ({sorted(_RESPONSE_DATA)})"
        )
    auth = str(p.get("authentication", "none"))
    if auth not in _AUTH_TYPES:
        raise WorkflowError(f"{where}: authentication {auth!r} unsupported ({sorted(_AUTH_TYPES)})")
    cred_ref: CredentialRef | None = None
    cred_type = _AUTH_TYPES[auth]
    if cred_type is not None:
        ref = node.credentials.get(cred_type)
        if not isinstance(ref, Mapping):
            cred_ref = CredentialRef(cred_type, None, None)
        else:
            rid, rname = ref.get("id"), ref.get("name")
            cred_ref = CredentialRef(cred_type, _opt_str(rid), _opt_str(rname))
    options = p.get("options", {}) if isinstance(p.get("options", {}), Mapping) else {}
    return WebhookSpec(
        workflow=workflow,
        node=node.name,
        path=path,
        methods=methods,
        response_mode=mode,
        response_data=data,
        response_code=_response_code(p, options, where),
        no_response_body=bool(options.get("noResponseBody", False)),
        authentication=auth,
        credential=cred_ref,
    )


def _response_code(p: Mapping[str, Any], options: Mapping[str, Any], where: str) -> int:
    raw: Any = options.get("responseCode", p.get("responseCode", 200))
    if isinstance(raw, Mapping):
        values = raw.get("values", raw)
        raw = values.get("customCode", values.get("responseCode", 200))
        if values.get("responseCode") not in (None, "customCode"):
            raw = values["responseCode"]
    if isinstance(raw, bool) or not isinstance(raw, int) or not 100 <= raw <= 599:
        raise WorkflowError(f"{where}: responseCode {raw!r} is not an HTTP status")
    return int(raw)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _read_json(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowError(f"{file}: cannot read: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WorkflowError(f"{file}: not valid JSON: {exc}") from exc
