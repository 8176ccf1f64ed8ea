"""The part of n8n's expression language the fake evaluates, refused at load beyond it.

An n8n parameter whose string value starts with `=` is an expression: literal text with
`{{ ... }}` blocks of JavaScript. The fake evaluates this subset of what goes in a block:

- `$json` and property paths on it: `$json.body.idempotency_key`, `$json["a-b"]`,
  `$json.headers['idempotency-key']`, `$json.items[0]`, optional chaining `?.`;
- literals: strings ('...' or "..."), numbers, `true`, `false`, `null`, `undefined`;
- object literals `{ key: expr, "other": expr }` and array literals `[expr, ...]` built from
  them.

`={{ expr }}` alone gives the value itself (an object stays an object); text mixed with blocks
gives a string, each block written as JavaScript's `String()` would, except that objects are
written as JSON and `null`/`undefined` as nothing, as n8n writes them. Reading a property of
`undefined` or `null` fails like JavaScript (`Cannot read properties of undefined (reading
'x')`), which fails the node. Anything else (`$node`, `$('Webhook')`, calls, operators) raises
`ExpressionUnsupported` when the workflow is loaded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "UNDEFINED",
    "Expression",
    "ExpressionError",
    "ExpressionUnsupported",
    "is_expression",
    "js_string",
    "parse_expression",
]


class ExpressionUnsupported(ValueError):
    """An expression outside the subset the fake evaluates (raised when loading)."""


class ExpressionError(ValueError):
    """An expression that fails when evaluated, as the JavaScript would (fails the node)."""


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Final = _Undefined()
"""JavaScript's `undefined`: a missing property, distinct from JSON's `null`."""

_TOKEN: Final = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>\$?[A-Za-z_][A-Za-z0-9_$]*)
      | (?P<op>\?\.|[.\[\]{}(),:])
    )""",
    re.VERBOSE,
)
_BLOCK: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def is_expression(value: object) -> bool:
    """Whether an n8n parameter value is an expression (a string starting with `=`)."""
    return isinstance(value, str) and value.startswith("=")


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed parameter expression: literal text and evaluable blocks."""

    source: str
    parts: tuple[str | _Node, ...]

    def evaluate(self, json_value: Mapping[str, Any]) -> Any:
        """The value for an item whose JSON is `json_value` (`UNDEFINED` when missing)."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0].evaluate(json_value)
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_template_text(part.evaluate(json_value)))
        return "".join(out)


def parse_expression(source: str) -> Expression:
    """Parse `source` (with its leading `=`); `ExpressionUnsupported` names what is not run."""
    text = source[1:] if source.startswith("=") else source
    parts: list[str | _Node] = []
    pos = 0
    for block in _BLOCK.finditer(text):
        if block.start() > pos:
            parts.append(text[pos : block.start()])
        parts.append(_Parser(block.group(1)).parse())
        pos = block.end()
    if pos < len(text):
        parts.append(text[pos:])
    last = parts[-1] if parts else None
    if (
        len(parts) == 2
        and isinstance(parts[0], _Node)
        and isinstance(last, str)
        and not last.strip()
    ):
        parts.pop()  # `={{ $json.x }}\n` is the value, as n8n trims it
    return Expression(source, tuple(parts))


def js_string(value: Any) -> str:
    """JavaScript's `String(value)` for JSON values (`[object Object]` for objects)."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _js_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join("" if v is None or v is UNDEFINED else js_string(v) for v in value)
    return "[object Object]"


def _js_number(value: float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
    return repr(value)


def _template_text(value: Any) -> str:
    if value is None or value is UNDEFINED:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return js_string(value)


class _Node:
    def evaluate(self, json_value: Mapping[str, Any]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Literal(_Node):
    value: Any

    def evaluate(self, json_value: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _Path(_Node):
    steps: tuple[tuple[str | int, bool], ...]
    """(key, optional) per step after `$json`."""

    def evaluate(self, json_value: Mapping[str, Any]) -> Any:
        value: Any = json_value
        for key, optional in self.steps:
            if value is None or value is UNDEFINED:
                if optional:
                    return UNDEFINED
                raise ExpressionError(
                    f"Cannot read properties of {js_string(value)} (reading '{key}')"
                )
            value = _member(value, key)
        return value


def _member(value: Any, key: str | int) -> Any:
    if isinstance(value, Mapping):
        return value.get(str(key), UNDEFINED)
    if isinstance(value, list | str):
        if key == "length":
            return len(value)
        index = key if isinstance(key, int) else int(key) if str(key).isdigit() else None
        if index is not None and 0 <= index < len(value):
            return value[index]
    return UNDEFINED


@dataclass(frozen=True, slots=True)
class _Object(_Node):
    entries: tuple[tuple[str, _Node], ...]

    def evaluate(self, json_value: Mapping[str, Any]) -> Any:
        out: dict[str, Any] = {}
        for key, node in self.entries:
            value = node.evaluate(json_value)
            if value is not UNDEFINED:  # JSON.stringify drops undefined members
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class _Array(_Node):
    items: tuple[_Node, ...]

    def evaluate(self, json_value: Mapping[str, Any]) -> Any:
        values = [node.evaluate(json_value) for node in self.items]
        return [None if v is UNDEFINED else v for v in values]


_CONSTANTS: Final = {"true": True, "false": False, "null": None, "undefined": UNDEFINED}


class _Parser:
    """Recursive descent over the tokens of one `{{ ... }}` block."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                raise self._unsupported(f"cannot read {text[pos:].strip()[:20]!r}")
            tokens.append((match.lastgroup, match.group(match.lastgroup)))
            pos = match.end()
        return tokens

    def _unsupported(self, why: str) -> ExpressionUnsupported:
        return ExpressionUnsupported(
            f"{{{{{self.text}}}}}: {why}; the fake n8n evaluates $json paths, literals and "
            "object/array literals of them"
        )

    def parse(self) -> _Node:
        node = self._value()
        if self.pos != len(self.tokens):
            raise self._unsupported(f"unexpected {self.tokens[self.pos][1]!r}")
        return node

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise self._unsupported("it ends too soon")
        kind, text = self.tokens[self.pos]
        if expected is not None and text != expected:
            raise self._unsupported(f"expected {expected!r}, found {text!r}")
        self.pos += 1
        return kind, text

    def _value(self) -> _Node:
        kind, text = self._take()
        if kind == "str":
            return _Literal(_string(text))
        if kind == "num":
            number = float(text)
            return _Literal(int(number) if number.is_integer() and "." not in text else number)
        if kind == "name" and text in _CONSTANTS:
            return _Literal(_CONSTANTS[text])
        if kind == "name" and text == "$json":
            return self._path()
        if text == "{":
            return self._object()
        if text == "[":
            return _Array(tuple(self._list("]")))
        if text == "(":
            node = self._value()
            self._take(")")
            return node
        raise self._unsupported(f"{text!r} is outside the subset")

    def _path(self) -> _Path:
        steps: list[tuple[str | int, bool]] = []
        while self._peek() in (".", "?.", "["):
            _, op = self._take()
            if op == "[":
                kind, text = self._take()
                if kind not in ("str", "num"):
                    raise self._unsupported(f"[{text}] needs a quoted key or an index")
                steps.append((_string(text) if kind == "str" else int(float(text)), False))
                self._take("]")
                continue
            if op == "?." and self._peek() == "[":
                raise self._unsupported("?.[ ] is outside the subset")
            kind, text = self._take()
            if kind != "name":
                raise self._unsupported(f"expected a property name after {op!r}")
            steps.append((text, op == "?."))
        if self._peek() == "(":
            raise self._unsupported("method calls are outside the subset")
        return _Path(tuple(steps))

    def _object(self) -> _Object:
        entries: list[tuple[str, _Node]] = []
        while self._peek() != "}":
            kind, key = self._take()
            if kind not in ("name", "str"):
                raise self._unsupported(f"object key {key!r} must be a name or a string")
            self._take(":")
            entries.append((_string(key) if kind == "str" else key, self._value()))
            if self._peek() != "}":
                self._take(",")
        self._take("}")
        return _Object(tuple(entries))

    def _list(self, end: str) -> Sequence[_Node]:
        items: list[_Node] = []
        while self._peek() != end:
            items.append(self._value())
            if self._peek() != end:
                self._take(",")
        self._take(end)
        return items


def _string(token: str) -> str:
    body = token[1:-1]
    if token[0] == "'":
        body = body.replace('\\"', '"').replace("\\'", "'").replace('"', '\\"')
    value: str = json.loads(f'"{body}"')
    return value
