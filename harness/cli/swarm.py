"""`reliability-harness chaos --swarm N`: generated scenarios over many seeds.

    reliability-harness chaos --swarm N [--seed S] [--jobs K] [--shard I/M] [--for 10m]
                              [--differential] [--database-url URL] [--out DIR]

Run `i` simulates the scenario generated from seed `S + i` (see `harness.swarm`), checks every
invariant that applies, shrinks each failure to a small catalogue YAML file under
`DIR/reproducers/`, and writes `results.json` (its `swarm` section holds every run's entry and
the summary) and `junit.xml` (one test case per invariant per failing run). Exit 1 when any run
broke an invariant.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.cli.exits import BROKEN, OK
from harness.cli.progress import ProgressPrinter

__all__ = ["SwarmRequest", "differential_scenarios", "run_swarm_command", "summary_lines"]


@dataclass(frozen=True, slots=True)
class SwarmRequest:
    """What the command line asked for."""

    runs: int | None
    seed: int = 1
    jobs: int = 1
    shard: str = "1/1"
    budget: float | None = None
    store_url: str | None = None
    differential_url: str | None = None
    shrink: bool = True
    shrink_budget: int = 150
    out: Path = Path("out/chaos")
    quiet: bool = False
    command: str = "reliability-harness chaos --swarm"


def swarm_section(
    request: SwarmRequest, entries: Sequence[Mapping[str, Any]], wall: float
) -> dict[str, Any]:
    """The `swarm` section of results.json."""
    from harness.report.swarm import SWARM_VERSION, swarm_summary
    from harness.swarm.coverage import EXPECTED

    return {
        "version": SWARM_VERSION,
        "seed": request.seed,
        "runs_requested": request.runs,
        "shard": request.shard,
        "for_seconds": request.budget,
        "differential": request.differential_url is not None,
        "jobs": request.jobs,
        "wall_seconds": round(wall, 3),
        "runs_per_second": round(len(entries) / wall, 3) if wall > 0 else None,
        "summary": swarm_summary(entries, EXPECTED),
        "entries": list(entries),
    }


def run_swarm_command(
    request: SwarmRequest, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the swarm, write its results, print the summary; the exit code."""
    from harness.chaos.results import results_document, write_json, write_junit
    from harness.swarm.run import Options, run_swarm
    from harness.swarm.shard import parse_shard

    so = stdout if stdout is not None else sys.stdout
    se = stderr if stderr is not None else sys.stderr
    options = Options(
        store_url=request.store_url,
        differential_url=request.differential_url,
        reproducers=request.out / "reproducers" if request.shrink else None,
        shrink_budget=request.shrink_budget,
    )
    unit = "of the runs" if request.runs is not None and request.budget is None else "of the time"
    draw = ProgressPrinter("swarm", stream=se, mode="off" if request.quiet else None, unit=unit)
    done = [0]
    clock = time.monotonic
    started = clock()

    def tick(entry: Mapping[str, Any]) -> None:
        done[0] += 1
        if not entry["passed"]:
            se.write(f"BROKEN seed {entry['seed']}: {', '.join(entry['broken'])}\n")
        if request.budget is not None:
            draw(min(1.0, (clock() - started) / request.budget))
        elif request.runs is not None:
            draw(done[0] / max(1, -(-request.runs // parse_shard(request.shard).count)))

    entries = run_swarm(
        request.seed,
        request.runs,
        options,
        shard=parse_shard(request.shard),
        jobs=request.jobs,
        budget=request.budget,
        on_entry=tick,
    )
    draw.close()
    wall = clock() - started
    section = swarm_section(request, entries, wall)
    outcomes = [e["outcome"] for e in entries if e["outcome"] is not None]
    document = results_document(outcomes, seed=request.seed, command=request.command)
    document["swarm"] = section
    write_json(request.out / "results.json", document)
    write_junit(request.out / "junit.xml", document)
    so.write("\n".join(summary_lines(section["summary"])) + "\n")
    so.write(
        f"{len(entries)} run(s) in {wall:.1f} s wall ({section['runs_per_second']} runs/s, "
        f"{request.jobs} job(s)); results in {request.out / 'results.json'}\n"
    )
    return BROKEN if section["summary"]["failures"] else OK


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary for a terminal: invariants, failures with their reproducers."""
    lines = [f"{'invariant':<22} {'runs':>6} {'held':>6} {'broken':>6} {'checked':>10}"]
    for name, row in summary["invariants"].items():
        lines.append(
            f"{name:<22} {row['runs']:>6} {row['held']:>6} {row['broken']:>6} {row['checked']:>10}"
        )
    if summary["unreached"]:
        lines.append("not reached by any run: " + ", ".join(summary["unreached"]))
    for f in summary["failures"]:
        lines.append(f"BROKEN seed {f['seed']}: {', '.join(f['broken'])}: {f['details'][:300]}")
        lines.append(f"  rerun: {f['command']}")
        rep = f["reproducer"]
        if rep:
            lines.append(f"  shrunk ({rep['size']}): {rep['command']}")
    return lines


def differential_scenarios(
    names: Sequence[str],
    seed: int | None,
    database_url: str,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Each scenario (default: the catalogue) on the embedded store and on `database_url`:
    equal traces, or the first lines where they part (exit 1)."""
    from harness.sim import simulate
    from harness.sim.scenario import ScenarioError, find_scenario, load_catalogue
    from harness.swarm.run import first_difference

    so = stdout if stdout is not None else sys.stdout
    se = stderr if stderr is not None else sys.stderr
    try:
        chosen = [find_scenario(n) for n in names] if names else load_catalogue()
    except ScenarioError as exc:
        se.write(f"reliability-harness chaos: error: {exc}\n")
        return 2
    differ = 0
    for sc in chosen:
        run_seed = sc.seed if seed is None else seed
        embedded = simulate(sc, seed=run_seed, store_url="sqlite://:memory:")
        postgres = simulate(sc, seed=run_seed, store_url=database_url)
        diff = first_difference(embedded.trace.lines, postgres.trace.lines)
        if diff is None:
            so.write(f"same   {sc.name} seed {run_seed}: {embedded.trace_hash[:16]}\n")
            continue
        differ += 1
        so.write(
            f"DIFFER {sc.name} seed {run_seed} from trace line {diff['line']}:\n"
            f"  embedded: {diff['first']}\n  postgres: {diff['second']}\n"
        )
    return BROKEN if differ else OK
