"""The swarm against injected bugs: runs needed to find each, and the size it shrinks to.

For each bug of `scenarios/swarm_bugs.py`, swarm runs from seed 1 until its invariant breaks
(at most 100), then the failing run is shrunk with the command's default budget (150 reruns).
Prints, per bug: the runs needed, the original and shrunk sizes, the reruns spent and the wall
time. The fast version of this is `scenarios/test_swarm_bugs.py`.

    python -m benchmarks swarm
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from harness.swarm.run import Options, run_one
from scenarios.swarm_bugs import BUGS

_MAX_RUNS = 100


def _size(size: dict[str, float]) -> str:
    return (
        f"{int(size['tenants'])} tenant(s), {int(size['events'])} event(s), "
        f"{int(size['faults'])} fault/setting item(s), {size['hours']:g} h"
    )


def main() -> int:
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for bug in BUGS:
            started = time.perf_counter()
            seed = next(
                (
                    s
                    for s in range(1, _MAX_RUNS + 1)
                    if bug.invariant in run_one(s, Options(hooks=bug.hooks))["broken"]
                ),
                None,
            )
            if seed is None:
                print(f"{bug.name}: NOT FOUND in {_MAX_RUNS} runs")
                missed += 1
                continue
            entry = run_one(seed, Options(hooks=bug.hooks, reproducers=Path(tmp)))
            rep = entry["reproducer"]
            print(
                f"{bug.name} ({bug.description}): found by run {seed} ({bug.invariant}); "
                f"{_size(rep['original_size'])} shrunk to {_size(rep['size'])} "
                f"in {rep['reruns']} reruns; {time.perf_counter() - started:.1f} s wall",
                flush=True,
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
