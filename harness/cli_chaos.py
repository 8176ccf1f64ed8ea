"""`reliability-harness chaos`: run the scenario catalogue, check every invariant, gate CI.

    reliability-harness chaos [--scenario NAME|FILE ...] [--seed N] [--database-url URL]
                              [--out DIR] [--quiet]

Runs the default catalogue (every `scenarios/catalogue/*.yaml`) on the embedded store unless
told otherwise, shows a progress bar over simulated time (stderr, TTY only), prints a summary
table, writes `results.json` and `junit.xml` under `--out`, and exits 1 when any invariant
broke (2 when a scenario file is invalid).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from harness.results import (
    ScenarioOutcome,
    results_document,
    run_scenario,
    write_json,
    write_junit,
)
from harness.scenario import CATALOGUE, Scenario, ScenarioError, find_scenario, load_catalogue
from harness.sim import Progress, ProgressBar

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
        command=command,
    )


def run_chaos(
    *,
    scenarios: Sequence[str] | None = None,
    seed: int | None = None,
    database_url: str | None = None,
    out: Path = Path("out/chaos"),
    quiet: bool = False,
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
    outcomes: list[ScenarioOutcome] = []
    started = time.perf_counter()
    for sc in chosen:

        def bar(label: str, sc: Scenario = sc) -> Progress | None:
            if quiet:
                return None
            name = sc.name if label == sc.name else f"{sc.name}/{label}"
            return ProgressBar(name, stream=se)

        outcome = run_scenario(sc, seed=seed, store_url=database_url, progress=bar)
        outcomes.append(outcome)
        if not outcome.passed:
            for inv in outcome.invariants:
                if not inv.passed:
                    se.write(f"BROKEN {sc.name}: {inv.name}: {inv.details}\n")
                    if inv.counterexample is not None:
                        se.write(inv.counterexample.render() + "\n")
    total = time.perf_counter() - started
    document = results_document(outcomes, seed=seed if seed is not None else -1, command=command)
    write_json(out / "results.json", document)
    write_junit(out / "junit.xml", outcomes)
    so.write(summary_table(outcomes))
    broken = sum(1 for o in outcomes if not o.passed)
    so.write(
        f"\n{len(outcomes)} scenario(s), {broken} with broken invariants, "
        f"{total:.1f} s wall; results in {out / 'results.json'} and {out / 'junit.xml'}\n"
    )
    return 1 if broken else 0


def summary_table(outcomes: Sequence[ScenarioOutcome]) -> str:
    """Scenario, invariants held/broken, key figures, trace hash: one line each."""
    header = (
        f"{'scenario':<20} {'invariants':<12} {'events':>8} {'delivered':>9} {'DLQ':>6} "
        f"{'n8n calls':>9} {'peak/s':>6} {'sim h':>6} {'wall s':>7}  trace hash"
    )
    lines = [header, "-" * len(header)]
    for o in outcomes:
        held = sum(1 for i in o.invariants if i.passed)
        broken = len(o.invariants) - held
        verdict = f"{held} ok" if not broken else f"{broken} BROKEN"
        f = o.runs[0].figures
        lines.append(
            f"{o.scenario.name:<20} {verdict:<12} {int(f['events_generated']):>8} "
            f"{int(f['delivered']):>9} {int(f['dead_lettered']):>6} "
            f"{int(sum(r.figures['n8n_calls'] for r in o.runs)):>9} "
            f"{int(max(r.figures['peak_arrivals_per_s'] for r in o.runs)):>6} "
            f"{o.simulated_seconds / 3600:>6.1f} {o.wall_seconds:>7.1f}  {o.trace_hash[:16]}"
        )
        if o.comparison is not None:
            cols = o.comparison["columns"]
            lines.append("    " + " | ".join(str(c) for c in cols))
            for row in o.comparison["rows"]:
                lines.append("    " + " | ".join(_cell(v) for v in row))
            if "verdict" in o.comparison:
                lines.append(f"    {o.comparison['verdict']}")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
