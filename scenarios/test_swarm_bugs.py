"""The swarm finds injected bugs within a few generated runs and shrinks each to a small file.

Each bug of `scenarios/swarm_bugs.py` must break its invariant within `RUNS` swarm runs from
seed 1 (the runs it needs are 3, 5, 2 and 2), and the shrunk reproducer, read back from its YAML
file, must still break it with the bug and hold without it. The shrink budget is small here to
keep the suite fast; `python -m benchmarks swarm` shrinks with the command's default budget and
prints the runs needed and the shrunk sizes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chaos.invariants import check_run
from harness.sim import simulate
from harness.sim.scenario import load_scenario
from harness.swarm.run import Options, run_one
from scenarios.swarm_bugs import BUGS, Bug

RUNS = 10
"""Each bug is found within this many swarm runs (seeds 1 to 10)."""


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.name)
def test_the_swarm_finds_and_shrinks(bug: Bug, tmp_path: Path) -> None:
    options = Options(hooks=bug.hooks)
    found = next(
        (s for s in range(1, RUNS + 1) if bug.invariant in run_one(s, options)["broken"]), None
    )
    assert found is not None, f"{bug.name} not found in {RUNS} runs"
    assert run_one(found)["passed"]  # the same run without the bug holds
    entry = run_one(found, Options(hooks=bug.hooks, reproducers=tmp_path, shrink_budget=8))
    rep = entry["reproducer"]
    assert rep is not None
    assert rep["invariant"] == entry["broken"][0]
    assert rep["steps"] >= 1
    before, after = rep["original_size"], rep["size"]
    assert after["events"] + after["tenants"] + after["faults"] < (
        before["events"] + before["tenants"] + before["faults"]
    )
    path = Path(rep["file"])
    assert (
        rep["command"] == f"reliability-harness chaos --scenario {path.as_posix()} --seed {found}"
    )
    scenario = load_scenario(path)
    broken = check_run(simulate(scenario, seed=found, hooks=bug.hooks), [rep["invariant"]])
    assert not broken[0].passed
    assert check_run(simulate(scenario, seed=found), [rep["invariant"]])[0].passed
