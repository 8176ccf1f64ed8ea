"""Workflows and credentials from n8n's own export format, and the node subset the fake runs.

Reads what `n8n export:workflow` writes (one workflow object, an array of them, or a directory of
`*.json` files) and what `n8n export:credentials --decrypted` writes. The fake registers each
active workflow's Webhook nodes and runs every call through this subset of nodes
(`harness.fakes.n8n_nodes`):

- Webhook (`n8n-nodes-base.webhook`): `httpMethod` (default GET, or a list with
  `multipleMethods`), `path`, `responseMode` (onReceived, lastNode, responseNode),
  `responseData` (firstEntryJson, allEntries, noData), `responseCode` / `options.responseCode`,
  `options.noResponseBody`, `options.allowedOrigins`, `authentication` (none, headerAuth,
  basicAuth);
- No Operation (`noOp`): passes its input on;
- Set (`set`): v1/v2 `values` (+ `keepOnlySet`), v3 manual `fields.values` or
  `assignments.assignments`, v3 raw `jsonOutput`; `includeOtherFields`/`include: all` merges input;
- Respond to Webhook (`respondToWebhook`): `respondWith` json, text, noData, firstIncomingItem or
  allIncomingItems, with `options.responseCode` and `options.responseHeaders`;
- Remove Duplicates (`removeDuplicates` v2): "remove items processed in previous executions"
  keyed on `dedupeValue`, with a history that outlives the execution (`DedupeHistory`);
- Stop and Error (`stopAndError`): fails the execution;
- Sticky Note: ignored.

Parameters of these nodes may hold expressions in the subset of `harness.fakes.n8n_expr`
(`={{ $json.body.idempotency_key }}`, object literals of such paths). Anything else (another
node type, an expression outside that subset, any expression on the Webhook node) is refused at
load with the file, node and parameter or type named; with `lenient=True` such a node passes its
input through instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from harness.fakes.n8n_dedupe import DedupeHistory
from harness.fakes.n8n_expr import ExpressionUnsupported, is_expression, parse_expression
from harness.fakes.n8n_nodes import (
    NODE_TYPES,
    NOOP,
    RESPOND,
    SET,
    Item,
    Outputs,
    Respond,
    RunState,
    check_node,
    run_node,
)

__all__ = [
    "CREDENTIALS_FILE",
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
    "credentials_beside",
    "load_credentials",
    "load_workflows",
    "parse_workflow",
]

_WEBHOOK: Final = "n8n-nodes-base.webhook"
_STICKY: Final = "n8n-nodes-base.stickyNote"

CREDENTIALS_FILE: Final = "credentials.json"
"""A credentials export beside workflow exports: loaded with them, never read as a workflow."""

SUPPORTED_NODE_TYPES: Final = frozenset({_WEBHOOK, _STICKY, *NODE_TYPES})
_INERT_TYPES: Final = frozenset({NOOP, SET, RESPOND})
_METHODS: Final = frozenset({"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"})
_RESPONSE_MODES: Final = frozenset({"onReceived", "lastNode", "responseNode"})
_RESPONSE_DATA: Final = frozenset({"firstEntryJson", "allEntries", "noData"})
_AUTH_TYPES: Final = {"none": None, "headerAuth": "httpHeaderAuth", "basicAuth": "httpBasicAuth"}


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
    id: str = ""
    expressions: bool = False
    """Whether any parameter is an expression (else they are used as they are, per item)."""


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
    allowed_origins: str | None = None
    """`options.allowedOrigins` (CORS); None when the node does not set it."""


@dataclass(frozen=True, slots=True)
class Execution:
    """The result of running a workflow from one of its Webhook nodes."""

    items: tuple[Item, ...]
    """Output 0 of the last node that ran (what `lastNode` answers with)."""
    last_node: str
    error: str | None = None
    respond: Respond | None = None
    run_data: Mapping[str, Outputs] = field(default_factory=dict)
    kept_keys: tuple[str, ...] = ()
    """Dedupe keys a Remove Duplicates node let through (new to its history)."""
    dropped_keys: tuple[str, ...] = ()
    """Dedupe keys a Remove Duplicates node dropped (seen in a previous execution)."""


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    active: bool
    source: str
    nodes: Mapping[str, Node]
    connections: Mapping[str, tuple[tuple[str, ...], ...]]
    """Node name -> per main output, the nodes it feeds, in n8n's (v1) execution order."""
    webhooks: tuple[WebhookSpec, ...] = field(default=())
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The export as loaded (what the public API's workflow list shows)."""
    inert_last: str | None = None
    """For a workflow whose run cannot fail nor leave state (only No Operation, Set and
    Respond to Webhook with fixed parameters): the node its runs end on. None otherwise."""

    def execute(
        self, webhook_node: str, item: Item, *, dedupe: DedupeHistory | None = None
    ) -> Execution:
        """Run the workflow from `webhook_node` with the webhook's item, depth first.

        `dedupe` is the Remove Duplicates history (a fresh, empty one when not given)."""
        state = RunState(self.id, last=webhook_node, items=(item,), dedupe=dedupe)
        state.run_data[webhook_node] = ((item,),)
        self._visit(webhook_node, ((item,),), state, depth=0)
        return Execution(
            state.items,
            state.last,
            state.error,
            state.respond,
            dict(state.run_data),
            tuple(state.kept_keys),
            tuple(state.dropped_keys),
        )

    def _visit(self, name: str, outputs: Outputs, state: RunState, depth: int) -> None:
        if depth > len(self.nodes):
            state.error = f"workflow {self.name!r} loops through node {name!r}"
            return
        for index, targets in enumerate(self.connections.get(name, ())):
            items = outputs[index] if index < len(outputs) else ()
            if not items:
                continue  # n8n runs no node on an empty branch
            for target in targets:
                if state.error is not None:
                    return
                out = run_node(self.nodes[target], items, state)
                state.last = target
                if out is None:
                    return
                state.run_data[target] = out
                state.items = out[0] if out else ()
                self._visit(target, out, state, depth + 1)


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
        files = (
            [f for f in sorted(p.glob("*.json")) if f.name != CREDENTIALS_FILE]
            if p.is_dir()
            else [p]
        )
        if p.is_dir() and not files:
            raise WorkflowError(f"{p}: no *.json workflow exports in this directory")
        for file in files:
            data = _read_json(file)
            items = data if isinstance(data, list) else [data]
            for index, raw in enumerate(items):
                source = str(file) if len(items) == 1 else f"{file}[{index}]"
                out.append(parse_workflow(raw, source=source, lenient=lenient, active=active))
    return tuple(out)


def credentials_beside(paths: str | Path | Sequence[str | Path]) -> Credentials | None:
    """The credentials exported next to workflow exports: `credentials.json` in each directory
    given (as `n8n export:credentials --decrypted` writes it), merged; None when there is none."""
    dirs = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    found = [d / CREDENTIALS_FILE for d in dirs if (d / CREDENTIALS_FILE).is_file()]
    if not found:
        return None
    return Credentials(c for file in found for c in load_credentials(file))


def load_credentials(path: str | Path) -> Credentials:
    """Credentials from `n8n export:credentials --decrypted` output: a file (an array or one
    object) or the directory `--separate` writes (one `*.json` file per credential)."""
    where = Path(path)
    files = sorted(where.glob("*.json")) if where.is_dir() else [where]
    if where.is_dir() and not files:
        raise WorkflowError(f"{where}: no *.json credential exports in this directory")
    creds = Credentials()
    for file in files:
        data = _read_json(file)
        items = data if isinstance(data, list) else [data]
        for index, raw in enumerate(items):
            creds.add(_credential(raw, f"{file}[{index}]"))
    return creds


def _credential(raw: object, where: str) -> Credential:
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
    return Credential(str(raw["id"]), name, ctype, data_map)


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
    workflow = Workflow(wid, name, is_active, source, nodes, connections, webhooks, raw)
    if all(_inert(n) for n in nodes.values()) and len(webhooks) == 1:
        last = workflow.execute(webhooks[0].node, {"json": {}}).last_node
        workflow = replace(workflow, inert_last=last)
    return workflow


def _inert(node: Node) -> bool:
    return (
        node.type == _WEBHOOK
        or node.disabled
        or node.passthrough
        or (node.type in _INERT_TYPES and not node.expressions)
    )


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
    node = Node(
        name,
        ntype,
        version,
        params,
        disabled,
        creds if isinstance(creds, Mapping) else {},
        id=str(raw.get("id", "")),
        expressions=any(True for _ in _expressions(params)),
    )
    if ntype == _STICKY:
        return node
    if ntype not in SUPPORTED_NODE_TYPES:
        if lenient:
            return Node(name, ntype, version, params, disabled, node.credentials, True, node.id)
        supported = ", ".join(sorted(SUPPORTED_NODE_TYPES - {_STICKY}))
        raise WorkflowError(
            f"{where}: node {name!r} has type {ntype!r}, which the fake n8n does not run "
            f"(supported: {supported}; load with lenient=True / --lenient to pass it through)"
        )
    problem = _problem(node)
    if problem is not None:
        if lenient and ntype != _WEBHOOK:
            return Node(name, ntype, version, params, disabled, node.credentials, True, node.id)
        hint = (
            "" if ntype == _WEBHOOK else " (load with lenient=True / --lenient to pass it through)"
        )
        raise WorkflowError(f"{where}: node {name!r} ({ntype}): {problem}{hint}")
    return node


def _problem(node: Node) -> str | None:
    """Why the fake cannot run `node` (of a supported type) as n8n would, or None."""
    if node.disabled:
        return None
    for key, source in _expressions(node.parameters):
        if node.type == _WEBHOOK:
            return f"parameter {key!r} is an expression; the fake n8n needs fixed Webhook settings"
        try:
            parse_expression(source)
        except ExpressionUnsupported as exc:
            return f"parameter {key!r}: {exc}"
    return check_node(node, "")


def _expressions(value: object, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str) and is_expression(value):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _expressions(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _expressions(v, f"{key}[{i}]")


def _parse_connections(
    raw: object, nodes: Mapping[str, Node], where: str
) -> dict[str, tuple[tuple[str, ...], ...]]:
    if not isinstance(raw, Mapping):
        raise WorkflowError(f"{where}: 'connections' must be an object")
    out: dict[str, tuple[tuple[str, ...], ...]] = {}
    for source_name, by_type in raw.items():
        if source_name not in nodes:
            continue  # a sticky note or a dangling entry n8n itself ignores
        if not isinstance(by_type, Mapping):
            raise WorkflowError(f"{where}: connections[{source_name!r}] must be an object")
        outputs: list[tuple[str, ...]] = []
        for output in by_type.get("main", []) or []:
            targets: list[str] = []
            for link in output or []:
                target = str(link.get("node")) if isinstance(link, Mapping) else ""
                if target not in nodes:
                    raise WorkflowError(
                        f"{where}: connection from {source_name!r} to unknown node {target!r}"
                    )
                targets.append(target)
            outputs.append(tuple(targets))
        out[str(source_name)] = tuple(outputs)
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
        allowed_origins=_opt_str(options.get("allowedOrigins")),
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
