"""Swarm testing: generated scenarios are valid, seeded, round-trip as YAML, and run as a swarm."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import yaml

from harness.cli.swarm import SwarmRequest, run_swarm_command
from harness.report.model import load_results
from harness.sim import simulate
from harness.sim.scenario import load_scenario
from harness.swarm.generate import FAULT_KINDS, enabled_kinds, generate, scenario_of
from harness.swarm.reproducer import dump
from harness.swarm.run import Options, run_one


def test_generated_documents_are_valid_and_vary() -> None:
    kinds_seen: set[str] = set()
    subsets = set()
    for seed in range(300):
        doc = generate(seed)
        scenario_of(doc)  # raises when invalid
        kinds = enabled_kinds(doc)
        kinds_seen.update(kinds)
        subsets.add(kinds)
    assert kinds_seen == set(FAULT_KINDS)
    assert len(subsets) > 250  # swarm: nearly every run enables a different subset


def test_same_seed_same_scenario_same_trace_hash() -> None:
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)
    first = simulate(scenario_of(generate(7)), seed=7)
    again = simulate(scenario_of(generate(7)), seed=7)
    assert first.trace_hash == again.trace_hash
    assert run_one(7)["trace_hash"] == first.trace_hash


def test_yaml_round_trips_through_the_parser(tmp_path: Path) -> None:
    for seed in range(40):
        doc = generate(seed)
        path = tmp_path / f"{doc['name']}.yaml"
        path.write_text(dump(doc), encoding="utf-8")
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == doc
        loaded = load_scenario(path)
        assert replace(loaded, file="x") == replace(scenario_of(doc), file="x")


def test_a_swarm_writes_results_the_report_reads(tmp_path: Path) -> None:
    out = io.StringIO()
    request = SwarmRequest(runs=3, seed=40, out=tmp_path, quiet=True, command="test")
    assert run_swarm_command(request, stdout=out, stderr=io.StringIO()) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    swarm = doc["swarm"]
    assert [e["seed"] for e in swarm["entries"]] == [40, 41, 42]
    assert swarm["summary"]["runs"] == 3
    assert swarm["summary"]["invariants"]["nothing_lost"]["held"] == 3
    assert all(
        e["command"] == f"reliability-harness chaos --swarm 1 --seed {e['seed']}"
        for e in swarm["entries"]
    )
    assert load_results(tmp_path).scenarios == ()  # still a valid chaos results file
    assert "3 run(s)" in out.getvalue()


def test_options_default_to_the_embedded_store() -> None:
    entry = run_one(3, Options())
    assert entry["passed"], entry["broken"]
    assert set(entry["invariants"]) >= {"nothing_lost", "quotas", "dlq_ttl"}
    assert entry["coverage"]
