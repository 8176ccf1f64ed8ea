"""The published JSON Schemas agree with the parsers and with their committed copies.

Every shipped scenario and fault profile validates against its schema (a real validator) and
parses; for every object the schema describes, an unknown key and a wrongly typed value are
refused by both the schema and the parser, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from harness.errors import InputError
from harness.fakes.faults import parse_profile
from harness.schemas import SCHEMAS, schema_text
from harness.sim.scenario import parse_scenario
from harness.sim.scenario_spec import SECTIONS

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios" / "catalogue").glob("*.yaml")) + sorted(
    (ROOT / "examples").glob("*scenario*.yaml")
)
PROFILES = sorted((ROOT / "loadtests" / "faults").glob("*.yaml")) + sorted(
    (ROOT / "examples").glob("*faults*.yaml")
)


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = SCHEMAS[name]()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_committed_copy_is_what_the_command_prints(name: str) -> None:
    committed = (ROOT / "docs" / "schema" / f"{name}.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(name), f"regenerate: reliability-harness schema {name}"
    printed = subprocess.run(
        [sys.executable, "-m", "harness", "schema", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed == committed


def test_every_shipped_file_is_checked() -> None:
    assert len(SCENARIOS) >= 10  # the catalogue and the example
    assert len(PROFILES) >= 3


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_validate_and_parse(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator("scenario").validate(data)
    parse_scenario(data, source=str(path))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_shipped_fault_profiles_validate_and_parse(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator("faults").validate(data)
    parse_profile(data, source=str(path))


# -- mutations: each object of a full document gets an unknown key, each leaf a wrong type -----

FULL_SCENARIO: dict[str, Any] = {
    "name": "full",
    "description": "every section",
    "seed": 3,
    "settings": {"N8N_MAX_RETRIES": 2},
    "tenants": [{"id": "t-{i}", "count": 2, "config": {"concurrency_limit": 2}, "weight": 2}],
    "traffic": {
        "events": 10, "duration": 60, "start": 0, "shape": "poisson",
        "mix": {"invoice.paid": 1}, "bursts": [{"at": 5, "events": 3, "spread": 1}],
    },
    "n8n": {"faults": {"seed": 1, "rules": [{"path": "*", "status": {"503": 0.1}}]}},
    "stripe": {"duplicates": 0.1, "duplicate_delay": [1, 5], "burst_copies": 3,
               "retry_schedule": [60]},
    "crashes": [{"at": 10, "restart": 20}],
    "cron": {"interval": 30, "batch": 10, "budget": 5},
    "dlq": {"retries": [{"at": 50, "count": 1}], "probes": 3},
    "store": {"url": "sqlite://:memory:"},
    "settle": 120,
    "invariants": {"disable": ["dlq_ttl"], "nothing_lost": {"checkpoints": 2}},
    "comparison": {"kind": "herd", "strategies": ["full"], "budget": [False], "bucket": 1},
}  # fmt: skip

FULL_PROFILE: dict[str, Any] = {
    "seed": 4,
    "rules": [
        {
            "path": "weekly-*", "tenant": "*", "status": {"503": 0.2}, "reset": 0.1,
            "retry_after": 2, "hang_for": 5, "run_before_fault": False,
            "latency": {"uniform": {"min": 0.1, "max": 0.2}},
            "outages": [{"start": 1, "end": 2, "fault": "hang"}],
            "flap": {"up": 10, "down": 5, "offset": 1, "fault": 502},
            "rate_limit": {"rate": 5, "burst": 2, "scope": "global"},
            "fail_first": {"count": 2, "fault": 500, "scope": "tenant"},
        }
    ],
}  # fmt: skip


def objects(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of every mapping in `doc` whose keys are fixed names (not free maps)."""
    if isinstance(doc, dict):
        free = path and path[-1] in {"settings", "config", "mix", "status"}
        if not free:
            yield path
        for key, value in doc.items():
            yield from objects(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from objects(value, (*path, i))


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, (*path, key))
    elif isinstance(doc, list) and doc and not isinstance(doc[0], dict | list):
        yield path, doc
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from leaves(value, (*path, i))
    else:
        yield path, doc


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def refused_by_parser(kind: str, doc: Any) -> bool:
    try:
        if kind == "scenario":
            parse_scenario(doc, source="<mutant>")
        else:
            parse_profile(doc, source="<mutant>")
    except InputError:
        return True
    return False


@pytest.mark.parametrize(("kind", "full"), [("scenario", FULL_SCENARIO), ("faults", FULL_PROFILE)])
def test_both_accept_the_full_document(kind: str, full: dict[str, Any]) -> None:
    validator(kind).validate(full)
    assert not refused_by_parser(kind, full)


@pytest.mark.parametrize(("kind", "full"), [("scenario", FULL_SCENARIO), ("faults", FULL_PROFILE)])
def test_both_refuse_an_unknown_key_anywhere(kind: str, full: dict[str, Any]) -> None:
    checked = 0
    for path in objects(full):
        mutant = copy.deepcopy(full)
        at(mutant, path)["no_such_key"] = 1
        assert not validator(kind).is_valid(mutant), path
        assert refused_by_parser(kind, mutant), path
        checked += 1
    assert checked >= (15 if kind == "scenario" else 8)


@pytest.mark.parametrize(("kind", "full"), [("scenario", FULL_SCENARIO), ("faults", FULL_PROFILE)])
def test_both_refuse_a_wrongly_typed_value_anywhere(kind: str, full: dict[str, Any]) -> None:
    checked = 0
    for path, value in leaves(full):
        if {"settings", "config"} & set(path):
            continue  # handed to the service's own config checks, not described here
        wrong: Any = {"nested": True} if isinstance(value, str) else "not-a-number"
        if isinstance(value, bool):
            wrong = "yes"
        mutant = copy.deepcopy(full)
        at(mutant, path[:-1])[path[-1]] = wrong
        assert not validator(kind).is_valid(mutant), path
        assert refused_by_parser(kind, mutant), path
        checked += 1
    assert checked >= 20


def test_the_spec_names_every_section_the_schema_describes() -> None:
    schema = json.loads(schema_text("scenario"))
    for section, fields in SECTIONS.items():
        described = schema if section == "top" else schema["$defs"][section]
        assert set(described["properties"]) == set(fields), section
