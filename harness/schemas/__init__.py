"""JSON Schemas of the files people write: scenarios and fault profiles.

`SCHEMAS[name]()` builds one; `schema_text(name)` is the exact text `reliability-harness schema
NAME` prints and `docs/schema/NAME.schema.json` holds (a test keeps the two equal). Point an
editor at them, e.g. with a first line `# yaml-language-server: $schema=<path or URL>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["SCHEMAS", "schema_text"]


def _scenario() -> dict[str, Any]:
    from harness.sim.scenario_spec import scenario_schema

    return scenario_schema()


def _faults() -> dict[str, Any]:
    from harness.fakes.fault_schema import faults_schema

    return faults_schema()


SCHEMAS: Final[Mapping[str, Callable[[], dict[str, Any]]]] = {
    "scenario": _scenario,
    "faults": _faults,
}


def schema_text(name: str) -> str:
    """The schema as indented JSON with a final newline (stable: keys in table order)."""
    return json.dumps(SCHEMAS[name](), indent=2) + "\n"
