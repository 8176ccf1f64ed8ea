"""`reliability-harness chaos`: run the scenario catalogue, check every invariant, gate CI.

    reliability-harness chaos [--scenario NAME|FILE ...] [--seed N] [--database-url URL]
                              [--out DIR] [--quiet] [--jobs N] [--list]

Runs the default catalogue (every `scenarios/catalogue/*.yaml`) on the embedded SQLite store
unless told otherwise (`--database-url embedded` runs on an embedded PostgreSQL 16), shows
progress over simulated time on stderr (a bar on a terminal, a plain line every 10 s
elsewhere), prints a summary table, writes `results.json` and `junit.xml` under `--out`, and
exits 1 when any invariant broke (2 when a scenario file is invalid).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from harness.cli.exits import BAD_INPUT, BROKEN, OK
from harness.cli.progress import ProgressPrinter
from reliability.redact import redact_argv

if TYPE_CHECKING:
    from harness.sim import Progress
    from harness.sim.scenario import Scenario

__all__ = ["main", "register", "run_chaos"]

EMBEDDED = "embedded"
"""`--database-url embedded`: an embedded PostgreSQL 16 for the run (`harness.live.embedded`)."""


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
        help="a catalogue name or a YAML file; repeatable (default: the whole catalogue, "
        "see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    parser.add_argument("--seed", type=int, help="override every scenario's seed")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="run on this PostgreSQL (each run in its own schema) instead of the embedded "
        "SQLite store; `embedded` starts an embedded PostgreSQL 16 for the run",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="with --database-url embedded: keep the server's data here (default: a temporary "
        "directory, removed at exit)",
    )
    parser.add_argument(
        "--out", default="out/chaos", metavar="DIR", help="where results.json and junit.xml go"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="scenarios run in N worker processes (default: 2 or the CPU count if lower); "
        "with 1, progress is shown per scenario",
    )
    _register_swarm(parser)
    parser.set_defaults(func=main)


def _register_swarm(parser: Any) -> None:
    swarm = parser.add_argument_group(
        "swarm", "generated scenarios over many seeds (see docs/chaos.md, Swarm testing)"
    )
    swarm.add_argument(
        "--swarm",
        type=int,
        metavar="N",
        help="run N generated scenarios, run i from seed S+i (S: --seed, default 1)",
    )
    swarm.add_argument(
        "--shard", default="1/1", metavar="I/M", help="run only the I-th of M disjoint slices"
    )
    swarm.add_argument(
        "--for",
        dest="budget",
        metavar="DURATION",
        help="start runs until DURATION (90s, 10m, 1h) has passed; with --swarm N, at most N",
    )
    swarm.add_argument(
        "--differential",
        action="store_true",
        help="run every scenario (generated, or given with --scenario) on the embedded store "
        "and on PostgreSQL (--database-url, default: an embedded PostgreSQL 16) and require "
        "equal traces",
    )
    swarm.add_argument(
        "--no-shrink", action="store_true", help="do not shrink failures to reproducers"
    )


def main(args: argparse.Namespace) -> int:
    if args.list:
        return list_catalogue(sys.stdout)
    argv = ["reliability-harness", "chaos", *sys.argv[2:]] if len(sys.argv) > 1 else []
    command = shlex.join(redact_argv(argv)) if argv else "reliability-harness chaos"
    if args.data_dir is not None and args.database_url != EMBEDDED:
        sys.stderr.write("reliability-harness chaos: --data-dir needs --database-url embedded\n")
        return BAD_INPUT
    if args.swarm is not None or args.budget is not None:
        return _swarm(args, command)
    if args.differential:
        return _differential(args)
    with _database(args.database_url, args.data_dir) as database_url:
        return run_chaos(
            scenarios=args.scenario,
            seed=args.seed,
            database_url=database_url,
            out=Path(args.out),
            quiet=args.quiet,
            jobs=max(1, args.jobs),
            command=command,
        )


def _swarm(args: argparse.Namespace, command: str) -> int:
    from harness.cli.swarm import SwarmRequest, run_swarm_command
    from harness.swarm.shard import ShardError, parse_duration, parse_shard

    try:
        parse_shard(args.shard)
        budget = parse_duration(args.budget) if args.budget is not None else None
        if args.scenario:
            raise ShardError("--swarm generates its scenarios: give --scenario or --swarm")
        if args.swarm is not None and args.swarm < 1:
            raise ShardError(f"--swarm must be at least 1, got {args.swarm}")
    except ShardError as exc:
        sys.stderr.write(f"reliability-harness chaos: error: {exc}\n")
        return BAD_INPUT
    url = args.database_url
    if args.differential and url is None:
        url = EMBEDDED
    with _database(url, args.data_dir) as database_url:
        request = SwarmRequest(
            runs=args.swarm,
            seed=args.seed if args.seed is not None else 1,
            jobs=max(1, args.jobs),
            shard=args.shard,
            budget=budget,
            store_url=None if args.differential else database_url,
            differential_url=database_url if args.differential else None,
            shrink=not args.no_shrink,
            out=Path(args.out),
            quiet=args.quiet,
            command=command,
        )
        return run_swarm_command(request)


def _differential(args: argparse.Namespace) -> int:
    """`--differential` without `--swarm`: the given scenarios on both stores."""
    from harness.cli.swarm import differential_scenarios

    with _database(args.database_url or EMBEDDED, args.data_dir) as database_url:
        assert database_url is not None
        return differential_scenarios(args.scenario or [], args.seed, database_url)


@contextlib.contextmanager
def _database(url: str | None, data_dir: str | None) -> Iterator[str | None]:
    if url != EMBEDDED:
        yield url
        return
    from harness.live.embedded import embedded_postgres

    where = Path(data_dir) if data_dir is not None else None
    announce = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with embedded_postgres(where, announce=announce) as pg:
        yield pg.url


def _one_line(text: str, width: int = 90) -> str:
    """The first sentence of `text`, cut at a word to fit `width`."""
    flat = " ".join(text.split())
    first = flat.split(". ")[0].rstrip(".")
    if len(first) <= width:
        return first
    return first[: width - 3].rsplit(" ", 1)[0] + "..."


def list_catalogue(stream: TextIO) -> int:
    """Print every catalogue scenario: name, events, simulated hours, one-line description."""
    from harness.sim.scenario import load_catalogue

    scenarios = load_catalogue()
    width = max(len(sc.name) for sc in scenarios)
    for sc in scenarios:
        events = sc.traffic.events + sum(b.events for b in sc.traffic.bursts)
        hours = sc.end / 3600
        figures = f"{events:>7,} events {hours:>5.1f} h"
        stream.write(f"{sc.name:<{width}}  {figures}  {_one_line(sc.description)}\n")
    return OK


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
    from harness.chaos.results import (
        render_counterexample,
        results_document,
        write_json,
        write_junit,
    )
    from harness.sim.scenario import ScenarioError, find_scenario, load_catalogue

    so = stdout if stdout is not None else sys.stdout
    se = stderr if stderr is not None else sys.stderr
    try:
        chosen: list[Scenario] = (
            [find_scenario(s) for s in scenarios] if scenarios else load_catalogue()
        )
    except ScenarioError as exc:
        se.write(f"reliability-harness chaos: error: {exc}\n")
        return BAD_INPUT
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
        se.write(
            f"reliability-harness chaos: error: --database-url must be a postgresql:// URL "
            f"or {EMBEDDED}, "
            f"got {database_url!r}\n"
        )
        return BAD_INPUT
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
    document = results_document(docs, seed=seed, command=command)
    write_json(out / "results.json", document)
    write_junit(out / "junit.xml", document)
    so.write(summary_table(docs))
    broken = sum(1 for d in docs if not d["passed"])
    so.write(
        f"\n{len(docs)} scenario(s), {broken} with broken invariants, "
        f"{total:.1f} s wall; results in {out / 'results.json'} and {out / 'junit.xml'}\n"
    )
    return BROKEN if broken else OK


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
    from harness.chaos.results import run_scenario

    variants = _variants(sc)
    started = [0]
    printers: list[ProgressPrinter] = []

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
        printers.append(ProgressPrinter(name, stream=stream))
        return printers[-1]

    try:
        return run_scenario(sc, seed=seed, store_url=database_url, progress=bar).to_json()
    finally:
        for printer in printers:
            printer.close()


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

    The workers report progress into a shared mapping; the combined progress over simulated
    time goes to stderr (a bar on a terminal, plain lines elsewhere)."""
    docs: dict[int, dict[str, Any]] = {}
    order = sorted(range(len(chosen)), key=lambda i: -_cost(chosen[i]))
    draw = ProgressPrinter("catalogue", stream=stderr, mode="off" if quiet else None)
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
    draw.close()
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
            counts = [
                sum(int(r[4]) for r in comparison["rows"]),
                max(int(r[2]) for r in comparison["rows"]),
                sum(int(r[6]) for r in comparison["rows"]),
                sum(int(r[7]) for r in comparison["rows"]),
            ]
        else:
            counts = [
                f.get(k) for k in ("n8n_calls", "peak_arrivals_per_s", "delivered", "dead_lettered")
            ]
        # A model scenario (aws-occ) runs no events through the service: "-", not 0.
        calls, peak, delivered, dead = ("-" if v is None else str(int(v)) for v in counts)
        events = f.get("events_generated")
        if events is not None and comparison is not None and comparison["kind"] == "herd":
            events *= len(comparison["rows"])  # every variant's run, like the sums beside it
        lines.append(
            f"{d['name']:<20} {verdict:<12} {'-' if events is None else int(events):>8} "
            f"{delivered:>9} {dead:>6} {calls:>9} {peak:>6} "
            f"{float(d['simulated_seconds']) / 3600:>6.1f} {float(d['wall_seconds']):>7.1f}  "
            f"{d['trace_hash'][:16]}"
        )
        if comparison is not None:
            lines.append("    " + " | ".join(str(c) for c in comparison["columns"]))
            rows, note = _shown_rows(comparison)
            for row in rows:
                lines.append("    " + " | ".join(_cell(v) for v in row))
            if note:
                lines.append(f"    {note}")
            if "verdict" in comparison:
                lines.append(f"    {comparison['verdict']}")
    return "\n".join(lines) + "\n"


def _shown_rows(comparison: Mapping[str, Any]) -> tuple[list[Any], str]:
    """The comparison rows worth a terminal: aws-occ's at 100 clients (else its largest count;
    it has one row per strategy and client count), every row of the others."""
    rows = list(comparison["rows"])
    if comparison["kind"] != "aws-occ" or "clients" not in comparison["columns"]:
        return rows, ""
    at = comparison["columns"].index("clients")
    counts = {r[at] for r in rows}
    shown = 100 if 100 in counts else max(counts, default=0)
    chosen = [r for r in rows if r[at] == shown]
    if len(chosen) == len(rows):
        return rows, ""
    return chosen, f"(rows at {shown} clients; all {len(rows)} rows are in results.json)"


def _cell(value: object) -> str:
    if value is None:  # a time that never came (not every delivery was made)
        return "never"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
