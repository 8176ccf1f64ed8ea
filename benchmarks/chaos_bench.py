"""Wall time of the chaos simulation: the 24-hour load scenario and the whole catalogue.

Targets (issue 6): load-24h (100 tenants, 100,000 events, 24 simulated hours) on the embedded
store in <= 60 s wall (simulated:wall >= 1,440); the whole default catalogue in <= 5 minutes.

    python -m benchmarks chaos            # both
    python benchmarks/chaos_bench.py load # only the 24-hour scenario
"""

from __future__ import annotations

import sys
import time
import timeit

from harness.chaos.results import run_scenario
from harness.sim.scenario import find_scenario, load_catalogue


def _calibration() -> None:
    """A fixed pure-Python loop, so figures taken on different machines (or on one VM on
    different days) can be compared: the simulation's wall time scales with it."""
    seconds = min(timeit.repeat("sum(range(1000))", number=20_000, repeat=3))
    print(f"calibration: sum(range(1000)) x 20,000 in {seconds:.2f} s (best of 3)")


def _load() -> None:
    scenario = find_scenario("load-24h")
    cpu = time.process_time()
    outcome = run_scenario(scenario)
    cpu = time.process_time() - cpu
    run = outcome.runs[0]
    f = run.figures
    ratio = run.simulated_seconds / run.wall_seconds
    verdict = "ok" if run.wall_seconds <= 60 else "SLOWER than the 60 s target"
    print(
        f"load-24h: {int(f['events_generated'])} events, {int(f['tenants'])} tenants, "
        f"{int(f['n8n_calls'])} n8n calls, {run.simulated_seconds / 3600:.1f} simulated h in "
        f"{run.wall_seconds:.1f} s wall ({cpu:.1f} s CPU incl. checks): simulated:wall = "
        f"{ratio:,.0f} ({verdict}); {run.wall_seconds / f['events_generated'] * 1e3:.2f} ms/event;"
        f" invariants {'held' if outcome.passed else 'BROKEN'}; trace {run.trace_hash[:16]}"
    )


def _catalogue() -> None:
    started = time.perf_counter()
    rows = []
    for scenario in load_catalogue():
        t0 = time.perf_counter()
        outcome = run_scenario(scenario)
        rows.append((scenario.name, time.perf_counter() - t0, outcome.passed))
    total = time.perf_counter() - started
    for name, seconds, passed in rows:
        print(f"  {name:<20} {seconds:7.1f} s  {'held' if passed else 'BROKEN'}")
    verdict = "ok" if total <= 300 else "SLOWER than the 5 min target"
    print(f"catalogue: {len(rows)} scenarios in {total:.1f} s wall, checks included ({verdict})")


def main(argv: list[str]) -> None:
    which = argv[0] if argv else "all"
    _calibration()
    if which in ("all", "load"):
        _load()
    if which in ("all", "catalogue"):
        _catalogue()


if __name__ == "__main__":
    main(sys.argv[1:])
