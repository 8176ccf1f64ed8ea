"""A few constructors for JSON Schema (draft 2020-12) fragments, so specs read as tables.

    obj({"events": Field(integer(minimum=0), "How many events", 100)}, "Traffic")

`obj` closes the object (`additionalProperties: false`, as the parsers refuse unknown keys) and
gives every property its description and default, which editors show on hover and complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DRAFT",
    "NO_DEFAULT",
    "Field",
    "Schema",
    "any_of",
    "array",
    "boolean",
    "document",
    "enum",
    "integer",
    "map_of",
    "number",
    "obj",
    "string",
]

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Final = _NoDefault()


@dataclass(frozen=True, slots=True)
class Field:
    """One key of an object: the schema of its value, what it means, its default."""

    schema: Schema
    description: str
    default: Any = NO_DEFAULT
    required: bool = False


def number(
    *, minimum: float | None = None, exclusive_minimum: float | None = None,
    maximum: float | None = None,
) -> Schema:  # fmt: skip
    out: Schema = {"type": "number"}
    if minimum is not None:
        out["minimum"] = minimum
    if exclusive_minimum is not None:
        out["exclusiveMinimum"] = exclusive_minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Schema:
    out: Schema = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def string(*, min_length: int = 1, pattern: str | None = None) -> Schema:
    out: Schema = {"type": "string", "minLength": min_length}
    if pattern is not None:
        out["pattern"] = pattern
    return out


def boolean() -> Schema:
    return {"type": "boolean"}


def enum(values: Sequence[Any]) -> Schema:
    return {"enum": list(values)}


def array(items: Schema, *, min_items: int | None = None, max_items: int | None = None) -> Schema:
    out: Schema = {"type": "array", "items": items}
    if min_items is not None:
        out["minItems"] = min_items
    if max_items is not None:
        out["maxItems"] = max_items
    return out


def any_of(*options: Schema) -> Schema:
    return {"anyOf": list(options)}


def map_of(values: Schema, *, keys: Schema | None = None, description: str = "") -> Schema:
    """An object whose keys are free (or match `keys`) and whose values follow `values`."""
    out: Schema = {"type": "object", "additionalProperties": values}
    if keys is not None:
        out["propertyNames"] = keys
    if description:
        out["description"] = description
    return out


def obj(fields: Mapping[str, Field], description: str = "") -> Schema:
    """A closed object: only `fields`, each with its description and default."""
    properties: Schema = {}
    for name, f in fields.items():
        prop: Schema = {**f.schema, "description": f.description}
        if f.default is not NO_DEFAULT:
            prop["default"] = f.default
        properties[name] = prop
    out: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    required = [name for name, f in fields.items() if f.required]
    if required:
        out["required"] = required
    if description:
        out["description"] = description
    return out


def document(title: str, body: Schema, defs: Mapping[str, Schema]) -> Schema:
    """A self-contained top-level schema: `$schema`, title, the body, and its `$defs` (no
    `$id` and no reference outside the document, so an editor can load it from a file)."""
    return {
        "$schema": DRAFT,
        "title": title,
        **body,
        **({"$defs": dict(defs)} if defs else {}),
    }
