"""Strict readers and value checks for the service's configuration (pure functions).

Everything here answers `None` for a good value or a problem sentence for a bad one, or raises
`ValueError` with that sentence; `reliability.config` turns them into `KEY (source): problem`.
The harness has its own reader (`harness.inputs`); the service must not import the harness.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "MAX_JSON_DEPTH",
    "TENANT_ID_PATTERN",
    "header_name_problem",
    "header_value_problem",
    "json_strict",
    "read_utf8",
    "tenant_id_problem",
    "text_problem",
    "url_problem",
    "workflow_problem",
]

MAX_JSON_DEPTH = 8
"""Deepest nesting of arrays and objects a config JSON may have (tenants need 3)."""

TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A tenant id: ASCII letters, digits, `_`, `.`, `-`, starting with a letter or digit, at most 64
characters. Safe unquoted in URL paths, headers, Prometheus labels and log lines."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""RFC 9110 `token`, the grammar of a header field name."""

_WORKFLOW = re.compile(r"[A-Za-z0-9_.~-]+(?:/[A-Za-z0-9_.~-]+)*")


def read_utf8(path: Path) -> str:
    """A file's text; `ValueError` when it is unreadable or not UTF-8 (with the byte offset)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})") from None


def _depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (brackets in strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_strict(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON refusing duplicate keys, NaN/Infinity and nesting deeper than `max_depth`."""
    depth = _depth(text)
    if depth > max_depth:
        raise ValueError(f"nested {depth} deep, more than {max_depth}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None


def text_problem(value: str) -> str | None:
    """Text that cannot be encoded as UTF-8 (lone surrogates, e.g. from a non-UTF-8 env) or holds
    control characters other than tab."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        return "holds control characters"
    return None


def url_problem(url: str) -> str | None:
    """An http(s) URL with a host that the HTTP client (httpx) parses as written."""
    if not url or any(c.isspace() for c in url):
        return "must be an http:// or https:// URL without spaces"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"is not a valid URL ({exc})"
    if parsed.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parsed.host:
        return "has no host"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"port {parsed.port} is out of range 1..65535"
    if parsed.fragment:
        return "must not have a #fragment"
    return None


def header_name_problem(name: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return "must be an HTTP header name (RFC 9110 token: letters, digits, !#$%&'*+-.^_`|~)"
    return None


def header_value_problem(value: str) -> str | None:
    """A value sent in a header: visible ASCII and inner spaces only (what httpx encodes)."""
    if value != value.strip() or not all(" " <= c <= "~" for c in value):
        return "must be printable ASCII without leading or trailing spaces (it is sent in a header)"
    return None


def tenant_id_problem(tenant_id: str) -> str | None:
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        return (
            "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ (it appears in URL paths, headers, "
            "metrics labels and log lines)"
        )
    return None


def workflow_problem(path: str) -> str | None:
    if not _WORKFLOW.fullmatch(path) or ".." in path.split("/"):
        return "must be a URL path of letters, digits, _ . ~ - and / (no '..')"
    return None
