"""`reliability-harness chaos`: run the scenario catalogue, check every invariant, gate CI.

    reliability-harness chaos [--scenario NAME|FILE ...] [--seed N] [--database-url URL]
                              [--out DIR] [--quiet] [--jobs N]

Runs the default catalogue (every `scenarios/catalogue/*.yaml`) on the embedded store unless
told otherwise, shows a progress bar over simulated time (stderr, TTY only), prints a summary
table, writes `results.json` and `junit.xml` under `--out`, and exits 1 when any invariant
broke (2 when a scenario file is invalid).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, TextIO

from harness.chaos.results import (
    render_counterexample,
    results_document,
    run_scenario,
    write_json,
    write_junit,
)
from harness.sim import Progress, ProgressBar
from harness.sim.scenario import CATALOGUE, Scenario, ScenarioError, find_scenario, load_catalogue

__all__ = ["main", "register", "run_chaos"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chaos",
        help="run the chaos scenario catalogue and check every invariant",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME|FILE",
        help=f"a catalogue name or a YAML file; repeatable (default: all of {CATALOGUE})",
    )
    parser.add_argument("--seed", type=int, help="override every scenario's seed")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="run on this PostgreSQL (each run in its own schema) instead of the embedded store",
    )
    parser.add_argument(
        "--out", default="out/chaos", metavar="DIR", help="where results.json and junit.xml go"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="scenarios run in N worker processes (default: 2 or the CPU count if lower); "
        "with 1, progress bars over simulated time are shown",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    argv = ["reliability-harness", "chaos", *sys.argv[2:]] if len(sys.argv) > 1 else []
    command = shlex.join(argv) if argv else "reliability-harness chaos"
    return run_chaos(
        scenarios=args.scenario,
        seed=args.seed,
        database_url=args.database_url,
        out=Path(args.out),
        quiet=args.quiet,
        jobs=max(1, args.jobs),
        command=command,
    )


def run_chaos(
    *,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
    database_url: str | None = None,
    out: Path = Path("out/chaos"),
    quiet: bool = False,
    jobs: int = 1,
    command: str = "reliability-harness chaos",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The command's body, callable from Python (tests use it)."""
    so = stdout if stdout is not None else sys.stdout
    se = stderr if stderr is not None else sys.stderr
    try:
        chosen: list[Scenario] = (
            [find_scenario(s) for s in scenarios] if scenarios else load_catalogue()
        )
    except ScenarioError as exc:
        se.write(f"error: {exc}\n")
        return 2
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
        se.write(f"error: --database-url must be a postgresql:// URL, got {database_url!r}\n")
        return 2
    started = time.perf_counter()
    if jobs > 1 and len(chosen) > 1:
        docs = _run_parallel(chosen, seed, database_url, jobs, quiet=quiet, stderr=se)
    else:
        docs = [
            _run_one(sc, seed, database_url, None if quiet else se, show=not quiet) for sc in chosen
        ]
    for doc in docs:
        for inv in doc["invariants"]:
            if not inv["passed"]:
                se.write(f"BROKEN {doc['name']}: {inv['name']}: {inv['details']}\n")
                if inv["counterexample"] is not None:
                    se.write(render_counterexample(inv["counterexample"]) + "\n")
    total = time.perf_counter() - started
    document = results_document(docs, seed=seed if seed is not None else -1, command=command)
    write_json(out / "results.json", document)
    write_junit(out / "junit.xml", docs)
    so.write(summary_table(docs))
    broken = sum(1 for d in docs if not d["passed"])
    so.write(
        f"\n{len(docs)} scenario(s), {broken} with broken invariants, "
        f"{total:.1f} s wall; results in {out / 'results.json'} and {out / 'junit.xml'}\n"
    )
    return 1 if broken else 0


def _run_one(
    sc: Scenario,
    seed: int | None,
    database_url: str | None,
    stream: TextIO | None,
    *,
    show: bool,
    shared: MutableMapping[str, float] | None = None,
) -> dict[str, Any]:
    """Run one scenario to its JSON verdict (in this process or a worker).

    Progress goes to a bar on `stream` (`show`), or into `shared[name]` as the fraction of the
    scenario's simulated time done (a worker reporting to the parent's combined bar)."""
    variants = _variants(sc)
    started = [0]

    def bar(label: str) -> Progress | None:
        if shared is not None:
            index = started[0]
            started[0] += 1

            def report(fraction: float) -> None:
                shared[sc.name] = (index + fraction) / variants

            return report
        if not show:
            return None
        name = sc.name if label == sc.name else f"{sc.name}/{label}"
        return ProgressBar(name, stream=stream)

    return run_scenario(sc, seed=seed, store_url=database_url, progress=bar).to_json()


def _variants(sc: Scenario) -> int:
    if sc.comparison is not None and sc.comparison.kind == "herd":
        return len(sc.comparison.strategies) * len(sc.comparison.budget)
    return 1


def _cost(sc: Scenario) -> float:
    events = sc.traffic.events + sum(b.events for b in sc.traffic.bursts)
    return float(events * _variants(sc))


def _run_parallel(
    chosen: Sequence[Scenario],
    seed: int | None,
    database_url: str | None,
    jobs: int,
    *,
    quiet: bool,
    stderr: TextIO,
) -> list[dict[str, Any]]:
    """Scenarios on `jobs` worker processes, biggest first; results in catalogue order.

    The workers report progress into a shared mapping; a combined bar over simulated time is
    drawn on stderr (when it is a TTY)."""
    docs: dict[int, dict[str, Any]] = {}
    order = sorted(range(len(chosen)), key=lambda i: -_cost(chosen[i]))
    draw = ProgressBar("catalogue", stream=stderr, enabled=None if not quiet else False)
    with multiprocessing.Manager() as manager, ProcessPoolExecutor(max_workers=jobs) as pool:
        shared: MutableMapping[str, float] = manager.dict()
        futures = {
            pool.submit(_run_one, chosen[i], seed, database_url, None, show=False, shared=shared): i
            for i in order
        }
        pending = set(futures)
        weights = {sc.name: max(1.0, _cost(sc)) for sc in chosen}
        total = sum(weights.values())
        for _ in range(10_000_000):  # bounded: ends when every scenario has finished
            if not pending:
                break
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                i = futures[future]
                docs[i] = future.result()
                shared[chosen[i].name] = 1.0
            progress = dict(shared)
            draw(sum(weights[n] * progress.get(n, 0.0) for n in weights) / total)
    return [docs[i] for i in range(len(chosen))]


def summary_table(scenarios: Sequence[Mapping[str, Any]]) -> str:
    """Scenario, invariants held/broken, key figures, trace hash: one line each."""
    header = (
        f"{'scenario':<20} {'invariants':<12} {'events':>8} {'delivered':>9} {'DLQ':>6} "
        f"{'n8n calls':>9} {'peak/s':>6} {'sim h':>6} {'wall s':>7}  trace hash"
    )
    lines = [header, "-" * len(header)]
    for d in scenarios:
        invariants = d["invariants"]
        held = sum(1 for i in invariants if i["passed"])
        broken = len(invariants) - held
        verdict = f"{held} ok" if not broken else f"{broken} BROKEN"
        f = d["figures"]
        comparison = d["comparison"]
        if comparison is not None and comparison["kind"] == "herd":
            calls = sum(int(r[4]) for r in comparison["rows"])
            peak = max(int(r[2]) for r in comparison["rows"])
            delivered = sum(int(r[6]) for r in comparison["rows"])
            dead = sum(int(r[7]) for r in comparison["rows"])
        else:
            calls, peak = int(f["n8n_calls"]), int(f["peak_arrivals_per_s"])
            delivered, dead = int(f["delivered"]), int(f["dead_lettered"])
        lines.append(
            f"{d['name']:<20} {verdict:<12} {int(f['events_generated']):>8} "
            f"{delivered:>9} {dead:>6} {calls:>9} {peak:>6} "
            f"{float(d['simulated_seconds']) / 3600:>6.1f} {float(d['wall_seconds']):>7.1f}  "
            f"{d['trace_hash'][:16]}"
        )
        if comparison is not None:
            lines.append("    " + " | ".join(str(c) for c in comparison["columns"]))
            for row in comparison["rows"]:
                lines.append("    " + " | ".join(_cell(v) for v in row))
            if "verdict" in comparison:
                lines.append(f"    {comparison['verdict']}")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
