"""Swarm testing: generated scenarios over many seeds, checked, shrunk, sharded, covered.

`generate(seed)` draws a scenario document, `run_one(seed, options)` runs it to its results
entry (shrinking a failure to a reproducer file), `run_swarm` runs a shard of the seed space;
`shrink` and `coverage` work on any document and run. See docs/chaos.md, Swarm testing.
"""

from __future__ import annotations

from harness.swarm.coverage import coverage
from harness.swarm.generate import FAULT_KINDS, generate, scenario_of
from harness.swarm.run import Options, run_one, run_swarm
from harness.swarm.shrink import shrink

__all__ = [
    "FAULT_KINDS",
    "Options",
    "coverage",
    "generate",
    "run_one",
    "run_swarm",
    "scenario_of",
    "shrink",
]
