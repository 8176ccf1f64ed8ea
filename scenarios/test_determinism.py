"""Determinism: the same scenario and seed give the same trace, byte for byte."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.cli.chaos import run_chaos
from harness.sim import simulate, uuid4_text
from scenarios.conftest import make

_SCENARIO = {
    "n8n": {"faults": {"rules": [{"status": {"500": 0.1, "429": 0.05}, "hang": 0.02}]}},
    "stripe": {"duplicates": 0.1, "out_of_order": 0.1, "concurrent_duplicates": 0.05},
    "crashes": [{"at": 300, "restart": 330}],
}


def test_same_seed_same_hash_different_seed_different_hash() -> None:
    s = make(**_SCENARIO)
    a = simulate(s, seed=5)
    b = simulate(s, seed=5)
    c = simulate(s, seed=6)
    assert a.trace.lines == b.trace.lines
    assert a.trace_hash == b.trace_hash
    assert a.trace_hash != c.trace_hash
    assert a.figures == b.figures


def test_results_json_is_byte_identical_but_for_time_and_environment(tmp_path: Path) -> None:
    docs = []
    for name in ("one", "two"):
        code = run_chaos(scenarios=["smoke"], out=tmp_path / name, quiet=True)
        assert code == 0
        doc = json.loads((tmp_path / name / "results.json").read_text())
        doc.pop("generated_at")
        doc.pop("environment")
        for sc in doc["scenarios"]:
            sc.pop("wall_seconds")
        docs.append(json.dumps(doc, sort_keys=True))
    assert docs[0] == docs[1]


def test_parallel_workers_give_the_same_results(tmp_path: Path) -> None:
    docs = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        assert run_chaos(scenarios=["smoke", "crash-restart"], out=out, quiet=True, jobs=jobs) == 0
        doc = json.loads((out / "results.json").read_text())
        docs.append([(s["name"], s["trace_hash"], s["figures"]) for s in doc["scenarios"]])
    assert docs[0] == docs[1]


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_simulated_ids_are_the_uuid4_text_of_their_bits(bits: int) -> None:
    # The simulator formats its ids itself; a drift from uuid's would change every trace.
    assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))
