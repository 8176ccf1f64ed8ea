"""The nodes the fake n8n runs, and the checks that refuse at load what it would mis-run.

Each node gets its input items and gives one list of items per output (n8n's `main` outputs);
parameters holding expressions (`harness.fakes.n8n_expr`) are evaluated per item first, as n8n
evaluates `getNodeParameter(name, itemIndex)`. A node that fails sets `RunState.error`.

Remove Duplicates (`removeDuplicates` v2, operation "Remove Items Processed in Previous
Executions", keep items where "Value Is New") reads `dedupeValue` ("Value to Dedupe On", a
required parameter) per item, written as JavaScript's `value?.toString() ?? ''` writes it (a
missing value is the empty string, so the second call without a key is dropped), checks the
keys against the history of its context (`options.scope`: `node`, the default, or `workflow`)
and records the new ones. New items leave on output 0 ("Kept"), the others on output 1
("Discarded"). Past `options.historySize` (default 10000) keys the node fails, as n8n's does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from harness.fakes.n8n_dedupe import DedupeHistory, HistoryFull
from harness.fakes.n8n_expr import (
    UNDEFINED,
    Expression,
    ExpressionError,
    is_expression,
    js_string,
    parse_expression,
)

if TYPE_CHECKING:
    from harness.fakes.n8n_export import Node

__all__ = [
    "NODE_TYPES",
    "REMOVE_DUPLICATES",
    "Item",
    "Outputs",
    "Respond",
    "RunState",
    "check_node",
    "resolve",
    "run_node",
]

NOOP: Final = "n8n-nodes-base.noOp"
SET: Final = "n8n-nodes-base.set"
RESPOND: Final = "n8n-nodes-base.respondToWebhook"
STOP: Final = "n8n-nodes-base.stopAndError"
REMOVE_DUPLICATES: Final = "n8n-nodes-base.removeDuplicates"
NODE_TYPES: Final = frozenset({NOOP, SET, RESPOND, STOP, REMOVE_DUPLICATES})
"""The node types this module runs (the Webhook node and sticky notes are the loader's)."""

_PREVIOUS: Final = "removeItemsSeenInPreviousExecutions"
_SEEN_KEYS: Final = "removeItemsWithAlreadySeenKeyValues"
_DEDUPE_OPTIONS: Final = frozenset({"scope", "historySize"})
_RESPOND_WITH: Final = ("json", "text", "noData", "firstIncomingItem", "allIncomingItems")

Item = dict[str, Any]
Outputs = tuple[tuple[Item, ...], ...]


@dataclass(frozen=True, slots=True)
class Respond:
    """What a Respond to Webhook node answers."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: Any
    kind: str
    """`json` (body is a JSON value), `text` (a string) or `noData`."""


@dataclass(slots=True)
class RunState:
    """One execution in progress: where it is, what it gave, what the dedupe nodes decided."""

    workflow_id: str
    last: str
    items: tuple[Item, ...]
    dedupe: DedupeHistory | None = None
    error: str | None = None
    respond: Respond | None = None
    run_data: dict[str, Outputs] = field(default_factory=dict)
    kept_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)


def run_node(node: Node, items: tuple[Item, ...], state: RunState) -> Outputs | None:
    """The node's outputs, or None when it failed the execution (see `state.error`)."""
    if node.disabled or node.passthrough or node.type == NOOP:
        return (items,)
    try:
        if node.type == STOP:
            p = _params(node, _json(items[0]) if items else {})
            if p.get("errorType", "errorMessage") == "errorObject":
                state.error = str(p.get("errorObject", "{}"))
            else:
                state.error = str(p.get("errorMessage", "")) or "Workflow stopped"
            return None
        if node.type == SET:
            return (tuple({"json": _apply_set(node, _json(item))} for item in items),)
        if node.type == RESPOND:
            if state.respond is None:
                state.respond = respond_of(node, items)
            return (items,)
        if node.type == REMOVE_DUPLICATES:
            return _remove_duplicates(node, items, state)
    except (ExpressionError, HistoryFull) as exc:
        state.error = f"{node.name}: {exc}"
        return None
    except (ValueError, TypeError, KeyError) as exc:  # a value an expression gave the node
        why = "Invalid JSON in 'Response Body' field" if node.type == RESPOND else str(exc)
        state.error = f"{node.name}: {why}"
        return None
    return (items,)


def _json(item: Item) -> dict[str, Any]:
    value = item.get("json", {})
    return value if isinstance(value, dict) else {}


@functools.lru_cache(maxsize=1024)
def _parsed(source: str) -> Expression:
    return parse_expression(source)


def _params(node: Node, json_value: Mapping[str, Any]) -> Any:
    return resolve(node.parameters, json_value) if node.expressions else node.parameters


def resolve(value: Any, json_value: Mapping[str, Any]) -> Any:
    """`value` (a node's parameters) with every expression evaluated for one item."""
    if is_expression(value):
        result = _parsed(value).evaluate(json_value)
        return None if result is UNDEFINED else result
    if isinstance(value, Mapping):
        return {k: resolve(v, json_value) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, json_value) for v in value]
    return value


def _remove_duplicates(node: Node, items: tuple[Item, ...], state: RunState) -> Outputs:
    options = node.parameters.get("options", {}) or {}
    scope = str(options.get("scope", "node"))
    context = f"workflow:{state.workflow_id}"
    if scope == "node":
        context = f"node:{state.workflow_id}:{node.id or node.name}"
    by_key: dict[str, list[Item]] = {}
    for item in items:
        raw = node.parameters.get("dedupeValue", "")
        value = _parsed(raw).evaluate(_json(item)) if is_expression(raw) else raw
        by_key.setdefault(_dedupe_key(value), []).append(item)
    history = state.dedupe if state.dedupe is not None else DedupeHistory()
    state.dedupe = history
    size = int(options.get("historySize", 10000))
    new, processed = history.check_and_record(context, list(by_key), size)
    state.kept_keys.extend(new)
    state.dropped_keys.extend(processed)
    kept = tuple(i for k in new for i in by_key[k])
    dropped = tuple(i for k in processed for i in by_key[k])
    return (kept, dropped)


def _dedupe_key(value: Any) -> str:
    # n8n: `this.getNodeParameter('dedupeValue', i, '')?.toString() ?? ''`
    if value is None or value is UNDEFINED:
        return ""
    return js_string(value)


def respond_of(node: Node, items: tuple[Item, ...]) -> Respond:
    """What a Respond to Webhook node answers for its input `items`."""
    p = _params(node, _json(items[0]) if items else {})
    options = p.get("options", {}) or {}
    code = int(options.get("responseCode", 200))
    entries = (options.get("responseHeaders", {}) or {}).get("entries", [])
    # The node lowercases the names: `headers[header.name?.toLowerCase()] = value`
    headers = tuple((str(e["name"]).lower(), js_string(e.get("value", ""))) for e in entries)
    how = p.get("respondWith", "firstIncomingItem")
    if how == "json":
        body = p.get("responseBody", "{}")
        return Respond(code, headers, json.loads(body) if isinstance(body, str) else body, "json")
    if how == "text":
        return Respond(code, headers, str(p.get("responseBody", "")), "text")
    if how == "noData":
        return Respond(code, headers, None, "noData")
    if how == "allIncomingItems":
        return Respond(code, headers, [_json(i) for i in items], "json")
    return Respond(code, headers, _json(items[0]) if items else {}, "json")


def _apply_set(node: Node, item: Item) -> Item:
    p = _params(node, item)
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


# --- checks at load ---------------------------------------------------------------------------


def check_node(node: Node, where: str) -> str | None:
    """Why the fake cannot run `node` faithfully, or None (expressions are checked apart)."""
    if node.disabled:
        return None
    fixed = _without_expressions(node.parameters)
    try:
        if node.type == SET:
            return _check_set(node, fixed)
        if node.type == RESPOND:
            return _check_respond(node, fixed)
        if node.type == REMOVE_DUPLICATES:
            return _check_dedupe(node)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"bad parameters: {exc}"
    return None


def _without_expressions(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_expressions(v) for k, v in value.items() if not is_expression(v)}
    if isinstance(value, list):
        return [_without_expressions(v) for v in value if not is_expression(v)]
    return value


def _check_set(node: Node, p: Mapping[str, Any]) -> str | None:
    mode = p.get("mode", "manual")
    if node.type_version >= 3 and mode == "raw":
        raw = p.get("jsonOutput", "{}")
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            return f"jsonOutput is not JSON: {exc}"
        if not isinstance(parsed, Mapping):
            return "jsonOutput must be a JSON object"
    elif node.type_version >= 3 and mode != "manual":
        return f"Set mode {mode!r} unsupported"
    if node.type_version >= 3 and p.get("includeOtherFields") and p.get("include", "all") != "all":
        return f"include {p.get('include')!r} unsupported (only 'all')"
    probe = _replace(node, p)
    _apply_set(probe, {})
    return None


def _check_respond(node: Node, p: Mapping[str, Any]) -> str | None:
    how = p.get("respondWith", "firstIncomingItem")
    if how not in _RESPOND_WITH:
        return f"respondWith {how!r} unsupported (use {', '.join(_RESPOND_WITH)})"
    if is_expression(node.parameters.get("responseBody")):
        return None
    respond_of(_replace(node, p), ({},))
    return None


def _check_dedupe(node: Node) -> str | None:
    p = node.parameters
    if node.type_version != 2:
        return f"Remove Duplicates typeVersion {node.type_version:g} unsupported (only 2)"
    if p.get("operation") != _PREVIOUS:
        return f"operation {p.get('operation')!r} unsupported (only {_PREVIOUS!r})"
    if p.get("logic", _SEEN_KEYS) != _SEEN_KEYS:
        return f"logic {p.get('logic')!r} unsupported (only {_SEEN_KEYS!r})"
    if "dedupeValue" not in p:
        # A required parameter: without it n8n 2.8.4 runs no call of the workflow ("The
        # workflow has issues"), whatever else the node says (`dedupeField` is no name of its).
        return "dedupeValue ('Value to Dedupe On') is required"
    options = p.get("options", {}) or {}
    unknown = sorted(set(options) - _DEDUPE_OPTIONS)
    if unknown:
        return f"options {unknown} unsupported (only {sorted(_DEDUPE_OPTIONS)})"
    if options.get("scope", "node") not in ("node", "workflow"):
        return f"options.scope {options['scope']!r} must be 'node' or 'workflow'"
    size = options.get("historySize", 10000)
    if isinstance(size, bool) or not isinstance(size, int | float) or size < 1:
        return f"options.historySize {size!r} must be a positive number"
    return None


def _replace(node: Node, params: Mapping[str, Any]) -> Node:
    return replace(node, parameters=params)
