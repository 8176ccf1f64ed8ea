"""One swarm run, and a swarm of them: generate, simulate, check, compare stores, shrink.

`run_one(seed, options)` generates the scenario of `seed`, simulates it with that seed, checks
every invariant that applies (the defaults: all but `determinism`), optionally runs it again on
a second store and requires an equal trace (`--differential`), records what it covered, and,
when an invariant broke, shrinks the scenario to a small one that still breaks it and writes it
as a catalogue YAML file. It returns the run's JSON entry (see docs/results-schema.md).
`run_swarm` does that for a shard of the seed space, on worker processes, within a time budget.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.chaos.invariants import check_run
from harness.chaos.results import ScenarioOutcome
from harness.sim import Hooks, SimRun, simulate
from harness.swarm.coverage import coverage
from harness.swarm.generate import Doc, enabled_kinds, generate, scenario_of
from harness.swarm.reproducer import reproducer_text
from harness.swarm.shard import Shard, run_seeds
from harness.swarm.shrink import shrink, size
from harness.verdict import InvariantResult

__all__ = ["Options", "first_difference", "rerun_command", "run_one", "run_swarm"]


@dataclass(frozen=True, slots=True)
class Options:
    """How each run is done (the same for every run of a swarm, so it crosses to workers)."""

    store_url: str | None = None
    """The store (default: the embedded SQLite store)."""
    differential_url: str | None = None
    """A second store every run is repeated on; the traces must be equal."""
    reproducers: Path | None = None
    """Where shrunk failures are written (None: not shrunk)."""
    shrink_budget: int = 150
    """Reruns a shrink may spend per failure."""
    hooks: Hooks | None = field(default=None, compare=False)
    """Bugs to inject (tests; in-process only: hooks do not cross to worker processes)."""


def rerun_command(seed: int, options: Options) -> str:
    """The one command line that reruns run `seed` alone, as the swarm did."""
    cmd = f"reliability-harness chaos --swarm 1 --seed {seed}"
    if options.store_url:
        cmd += f" --database-url {options.store_url}"
    if options.differential_url:
        cmd += " --differential"
    return cmd


def _store_label(url: str | None) -> str:
    return "postgres" if url and url.startswith(("postgresql:", "postgres:")) else "embedded"


def _params(doc: Doc) -> dict[str, Any]:
    """The generated parameters a report shows the distribution of."""
    settings = doc.get("settings", {})
    return {
        **size(doc),
        "shape": doc["traffic"].get("shape", "uniform"),
        "strategy": settings.get("N8N_BACKOFF_STRATEGY", "additive"),
        "retry_budget": bool(settings.get("N8N_RETRY_BUDGET_ENABLED", False)),
        "settings_overridden": len(settings),
        "crashes": len(doc.get("crashes", [])),
    }


def first_difference(a: list[str], b: list[str]) -> dict[str, Any] | None:
    """Where two traces part: the line number and each side's line there (None: equal)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return {"line": i + 1, "first": x, "second": y}
    if len(a) != len(b):
        i = min(len(a), len(b))
        return {
            "line": i + 1,
            "first": a[i] if i < len(a) else "<end of trace>",
            "second": b[i] if i < len(b) else "<end of trace>",
        }
    return None


def _simulate(doc: Doc, seed: int, url: str | None, hooks: Hooks | None) -> SimRun:
    return simulate(scenario_of(doc), seed=seed, store_url=url, hooks=hooks)


def _differential(run: SimRun, doc: Doc, seed: int, options: Options) -> InvariantResult:
    """The same scenario and seed on the second store: the traces must be equal."""
    other = _simulate(doc, seed, options.differential_url, options.hooks)
    diff = first_difference(run.trace.lines, other.trace.lines)
    first, second = _store_label(run.store_url), _store_label(other.store_url)
    if diff is None:
        details = f"{first} and {second} traces equal ({run.trace.count} lines)"
        return InvariantResult("differential", True, run.trace.count, details)
    details = (
        f"BROKEN: {first} and {second} traces differ from line {diff['line']}: "
        f"{first}: {diff['first']!r} | {second}: {diff['second']!r}"
    )
    return InvariantResult("differential", False, diff["line"], details)


def run_one(seed: int, options: Options = Options()) -> dict[str, Any]:
    """Run `seed`'s generated scenario to its swarm entry."""
    started = time.perf_counter()
    doc = generate(seed)
    run = _simulate(doc, seed, options.store_url, options.hooks)
    results = check_run(run)
    if options.differential_url is not None:
        results.append(_differential(run, doc, seed, options))
    broken = [r.name for r in results if not r.passed]
    entry: dict[str, Any] = {
        "seed": seed,
        "name": doc["name"],
        "kinds": list(enabled_kinds(doc)),
        "params": _params(doc),
        "trace_hash": run.trace_hash,
        "passed": not broken,
        "invariants": {r.name: {"passed": r.passed, "checked": r.checked} for r in results},
        "broken": broken,
        "coverage": coverage(run),
        "command": rerun_command(seed, options),
        "outcome": None,
        "reproducer": None,
    }
    if broken:
        entry["outcome"] = _outcome(run, results, entry["command"])
        if options.reproducers is not None:
            entry["reproducer"] = _shrink(doc, seed, broken[0], options)
            entry["outcome"]["file"] = entry["reproducer"]["file"]
    del run
    # A simulation leaves reference cycles that `simulate`'s collector settings let pile up;
    # a worker runs hundreds of them, so collect once per run to keep its memory flat.
    gc.collect()
    entry["wall_seconds"] = round(time.perf_counter() - started, 3)
    return entry


def _outcome(run: SimRun, results: list[InvariantResult], command: str) -> dict[str, Any]:
    """The failing run as a results.json scenario (without its series: they are big)."""
    outcome = ScenarioOutcome(
        scenario=run.scenario,
        seed=run.seed,
        command=command,
        store=_store_label(run.store_url),
        runs=[run],
        invariants=results,
        wall_seconds=run.wall_seconds,
    )
    doc = outcome.to_json()
    doc["series"] = {}
    return doc


def _still_fails(seed: int, invariant: str, options: Options) -> Callable[[Doc], bool]:
    def fails(candidate: Doc) -> bool:
        run = _simulate(candidate, seed, options.store_url, options.hooks)
        if invariant == "differential":
            return not _differential(run, candidate, seed, options).passed
        return not check_run(run, [invariant])[0].passed

    return fails


def _shrink(doc: Doc, seed: int, invariant: str, options: Options) -> dict[str, Any]:
    """Shrink a failure that broke `invariant`, write the reproducer, say where it is."""
    assert options.reproducers is not None
    shrunk = shrink(doc, _still_fails(seed, invariant, options), budget=options.shrink_budget)
    small = {**shrunk.doc, "name": f"{doc['name']}-shrunk"}
    small["description"] = f"Shrunk from run seed {seed}: breaks {invariant}"
    path = options.reproducers / f"{small['name']}.yaml"
    command = f"reliability-harness chaos --scenario {path.as_posix()} --seed {seed}"
    if invariant == "differential":
        command = f"{command} --differential"
    elif options.store_url:
        command = f"{command} --database-url {options.store_url}"
    path.parent.mkdir(parents=True, exist_ok=True)
    origin = f"Shrunk by reliability-harness chaos --swarm from run seed {seed}."
    text = reproducer_text(
        small, broken=[invariant], size=size(small), command=command, origin=origin
    )
    path.write_text(text, encoding="utf-8")
    return {
        "file": path.as_posix(),
        "command": command,
        "invariant": invariant,
        "size": size(small),
        "original_size": size(doc),
        "reruns": shrunk.runs,
        "steps": shrunk.steps,
    }


def run_swarm(
    seed: int,
    runs: int | None,
    options: Options,
    *,
    shard: Shard | None = None,
    jobs: int = 1,
    budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """This shard's runs (all `runs`, or as many as start within `budget` seconds), entries in
    seed order. With `jobs` > 1 runs go to worker processes."""
    deadline = None if budget is None else clock() + budget
    seeds = (s for _, s in run_seeds(seed, runs, shard or Shard()))

    def due() -> Iterator[int]:
        for s in seeds:
            if deadline is not None and clock() >= deadline:
                return
            yield s

    entries: list[dict[str, Any]] = []

    def collect(entry: dict[str, Any]) -> None:
        entries.append(entry)
        if on_entry is not None:
            on_entry(entry)

    if jobs <= 1:
        for s in due():
            collect(run_one(s, options))
    else:
        _parallel(due(), options, jobs, collect)
    return sorted(entries, key=lambda e: int(e["seed"]))


def _parallel(
    seeds: Iterator[int], options: Options, jobs: int, collect: Callable[[dict[str, Any]], Any]
) -> None:
    """Keep `jobs` workers busy with two runs each queued; collect entries as they finish."""
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: set[Future[dict[str, Any]]] = set()
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * jobs:
                s = next(seeds, None)
                if s is None:
                    exhausted = True
                else:
                    pending.add(pool.submit(run_one, s, options))
            if pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    collect(future.result())
