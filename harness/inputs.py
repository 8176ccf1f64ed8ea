"""The harness's one reader of YAML and JSON input files (scenarios, fault profiles, thresholds).

`read_document(path, error)` reads a file as UTF-8 and parses it (JSON is read as the YAML it
is): a file that cannot be read, is not UTF-8, is not valid YAML, repeats a key in one mapping
or nests deeper than `MAX_DEPTH` is refused naming the file (and, for syntax, line and column).
`read_json` is its strict JSON twin for machine-written files (results), where the YAML parser
would be needlessly slow. `Reader` checks the parsed values: every refusal names the file and
the key path (`traffic.mix.invoice.paid: must be above 0, got -1`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn, TypeGuard

import yaml

from harness.errors import InputError

__all__ = [
    "MAX_DEPTH",
    "ErrorFactory",
    "Reader",
    "read_document",
    "read_json",
    "yaml_problem",
]

MAX_DEPTH: Final = 64
"""Deepest nesting of mappings and lists an input may have."""

ErrorFactory = Callable[[str, str, str], Exception]
"""Builds the error to raise from (source, key, problem)."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing repeated keys and runaway nesting."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (line {line})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        depth = getattr(self, "_depth", 0)
        if depth > MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", mark
            )
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth


def read_document(path: str | Path, source: str, error: ErrorFactory = InputError) -> object:
    """The parsed content of a YAML or JSON file; `source` is how errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(source, "(file)", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(source, "(file)", f"cannot read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(source, "(file)", yaml_problem(exc)) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _depth(value: object, level: int = 0) -> int:
    """How deep mappings and lists nest in `value` (iteratively: no recursion limit)."""
    deepest, stack = level, [(value, level)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d + 1)
            if deepest > MAX_DEPTH:
                return deepest
            stack += [(x, d + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return deepest


def read_json(path: str | Path, source: str, error: ErrorFactory = InputError) -> object:
    """The parsed content of a JSON file, refused on the same grounds as `read_document`, and
    also when empty; a syntax error at the very end says the file looks truncated."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(source, "(file)", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(source, "(file)", f"cannot read: {exc.strerror}") from None
    if not text.strip():
        raise error(source, "(file)", "empty file (an interrupted run?)")
    try:
        doc: object = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        truncated = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        where = f"line {exc.lineno}, column {exc.colno}"
        raise error(source, "(file)", f"not valid JSON at {where}: {exc.msg}{truncated}") from None
    except (ValueError, RecursionError) as exc:
        problem = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise error(source, "(file)", f"not valid JSON: {problem}") from None
    if _depth(doc) > MAX_DEPTH:
        raise error(source, "(file)", f"nested deeper than {MAX_DEPTH} levels")
    return doc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML syntax error as one line: where (line, column) and what, without PyYAML's
    `<unicode string>` stand-in for the file (the caller names the file)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    what = f"{context}: {problem}" if context else problem
    if mark is None:
        return f"not valid YAML: {what}"
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}"


def _is_number(raw: object) -> TypeGuard[int | float]:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


class Reader:
    """Checks for parsed input values that know the source file, so every error names it."""

    def __init__(self, source: str, error: ErrorFactory = InputError) -> None:
        self.source = source
        self._error = error

    def fail(self, key: str, problem: str) -> NoReturn:
        raise self._error(self.source, key, problem)

    def mapping(self, key: str, raw: object, allowed: frozenset[str]) -> Mapping[str, Any]:
        """A mapping (None reads as empty) whose keys are all in `allowed`."""
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(key, f"must be a mapping, got {type(raw).__name__}")
        for name in raw:
            if str(name) not in allowed:
                known = ", ".join(sorted(allowed))
                where = str(name) if key == "(top level)" else f"{key}.{name}"
                self.fail(where, f"unknown key (known: {known})")
        return {str(k): v for k, v in raw.items()}

    def string(self, key: str, raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip():
            self.fail(key, f"must be a non-empty string, got {raw!r}")
        return raw

    def number(
        self, key: str, raw: object, *, minimum: float | None = None, positive: bool = False
    ) -> float:
        if not _is_number(raw) or not math.isfinite(raw):
            self.fail(key, f"must be a number, got {raw!r}")
        value = float(raw)
        if positive and value <= 0:
            self.fail(key, f"must be above 0, got {value:g}")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum:g}, got {value:g}")
        return value

    def integer(self, key: str, raw: object, *, minimum: int | None = None) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            self.fail(key, f"must be a whole number, got {raw!r}")
        if minimum is not None and raw < minimum:
            self.fail(key, f"must be at least {minimum}, got {raw}")
        return raw

    def probability(self, key: str, raw: object) -> float:
        value = self.number(key, raw)
        if not 0.0 <= value <= 1.0:
            self.fail(key, f"probability {value:g} is outside 0..1")
        return value

    def boolean(self, key: str, raw: object) -> bool:
        if not isinstance(raw, bool):
            self.fail(key, f"must be true or false, got {raw!r}")
        return raw

    def span(self, key: str, raw: object) -> tuple[float, float]:
        """A `[min, max]` pair of seconds."""
        if not isinstance(raw, list) or len(raw) != 2:
            self.fail(key, f"must be a [min, max] pair of seconds, got {raw!r}")
        low = self.number(f"{key}[0]", raw[0], minimum=0.0)
        high = self.number(f"{key}[1]", raw[1], minimum=0.0)
        if high < low:
            self.fail(key, f"max {high:g} is below min {low:g}")
        return low, high

    def items(self, key: str, raw: object) -> list[Any]:
        """A list (None reads as empty)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail(key, f"must be a list, got {type(raw).__name__}")
        return raw
