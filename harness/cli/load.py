"""`reliability-harness load` and `reliability-harness crash`: real processes, real Postgres.

Both validate every argument before anything starts, stop every process they started on exit
(also on Ctrl-C, SIGTERM and failure), and exit 0 when every threshold and invariant held, 1 when
one broke, 2 on bad input, 3 when the run itself could not be carried out, 130 when interrupted.
The server is `--database-url`, else `RELIABILITY_DATABASE_URL`, else an embedded PostgreSQL 16
started for the run (`--data-dir`, printed; the `embedded-pg` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from harness.cli.exits import BROKEN, INTERRUPTED, OK, require
from harness.fakes.faults import FaultProfileError, load_profile
from harness.live.crash import CrashConfig, run_crash
from harness.live.embedded import EmbeddedUnavailable, embedded_postgres
from harness.live.errors import StackError
from harness.live.load import (
    DEFAULT_LOCUSTFILE,
    DEFAULT_SHARES,
    DEFAULT_THRESHOLDS_FILE,
    USER_CLASSES,
    LoadConfig,
    LoadError,
    parse_duration,
    preflight,
    run_load,
)
from harness.live.processes import ensure_port_free
from harness.live.thresholds import load_thresholds
from reliability.redact import redact, redact_argv

__all__ = ["database", "register"]

_T = TypeVar("_T")

DATABASE_ENV_VAR: Final = "RELIABILITY_DATABASE_URL"


def register(subparsers: Any) -> None:
    load = subparsers.add_parser(
        "load",
        help="locust load test against the real service, then invariants and thresholds",
        description=(
            "Start the service and the fake n8n as real processes on Postgres, run locust "
            "headless, drain, check the invariants against the database, judge thresholds."
        ),
    )
    load.add_argument("--users", type=int, default=20, help="locust users (default 20)")
    load.add_argument("--spawn-rate", type=float, default=20.0, help="users started per second")
    load.add_argument("--duration", default="60s", help="run time: 60s, 2m, 1h30m (default 60s)")
    load.add_argument("--faults", metavar="FILE", help="fault profile for the fake n8n")
    load.add_argument(
        "--workers", type=int, default=0, help="locust worker processes (master/worker mode)"
    )
    load.add_argument(
        "--thresholds",
        metavar="FILE",
        default=str(DEFAULT_THRESHOLDS_FILE),
        help="thresholds YAML (default loadtests/thresholds.yaml)",
    )
    load.add_argument("--out", metavar="DIR", default="out/load", help="results directory")
    _database_options(load)
    _traffic_options(load)
    _run_options(load)
    _register_crash(subparsers)


def _traffic_options(load: argparse.ArgumentParser) -> None:
    load.add_argument("--tenants", type=int, default=5, help="tenants (default 5)")
    load.add_argument(
        "--concurrency-limit", type=int, default=5, help="per-tenant n8n concurrency (default 5)"
    )
    load.add_argument("--seed", type=int, default=0, help="seed for secrets, events, choices")
    load.add_argument(
        "--user-classes",
        default=",".join(USER_CLASSES),
        help="comma-separated: " + ", ".join(USER_CLASSES) + " (default all)",
    )
    load.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="NAME=RATIO",
        help="request shares: " + ", ".join(f"{k}={v:g}" for k, v in DEFAULT_SHARES.items()),
    )
    load.add_argument(
        "--wait",
        default="0.05-0.2",
        metavar="MIN[-MAX]",
        help="seconds each user waits between tasks (0 for none; default 0.05-0.2)",
    )


def _run_options(load: argparse.ArgumentParser) -> None:
    load.add_argument("--drain-timeout", default="60s", help="bound on the final drain")
    load.add_argument("--ready-timeout", default="30s", help="bound on process readiness")
    load.add_argument(
        "--cron-drain-every",
        default="1s",
        help="call POST /api/cron/drain this often during the run, as cron would (0: never)",
    )
    load.add_argument(
        "--service-workers", type=int, default=1, help="uvicorn workers of the service"
    )
    load.add_argument("--service-port", type=int, default=0, help="service port (default any)")
    load.add_argument("--n8n-port", type=int, default=0, help="fake n8n port (default any)")
    load.add_argument("--master-port", type=int, default=0, help="locust master port")
    load.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="service setting for the run, e.g. N8N_MAX_RETRIES=5",
    )
    load.add_argument("--locustfile", default=str(DEFAULT_LOCUSTFILE), help=argparse.SUPPRESS)
    load.add_argument("--keep-schema", action="store_true", help="keep the run's schema")
    load.set_defaults(func=_cmd_load)


def _register_crash(subparsers: Any) -> None:
    crash = subparsers.add_parser(
        "crash",
        help="SIGKILL the service at seeded points during a run; audit nothing lost",
        description=(
            "Run two service instances and the fake n8n (slow, failing) on Postgres, SIGKILL "
            "them at seeded random points while events arrive, restart, drain to completion, "
            "and check nothing was lost and duplicates at n8n are bounded by the crashes."
        ),
    )
    crash.add_argument("--kills", type=int, default=4, help="SIGKILLs during the run (default 4)")
    crash.add_argument("--seed", type=int, default=0)
    crash.add_argument("--duration", default="10s", help="traffic time (default 10s)")
    crash.add_argument("--rate", type=float, default=30.0, help="new events per second")
    crash.add_argument("--tenants", type=int, default=3)
    crash.add_argument("--faults", metavar="FILE", help="fault profile (default: slow, failing)")
    _database_options(crash)
    crash.add_argument("--out", metavar="DIR", default="out/crash")
    crash.add_argument("--keep-schema", action="store_true")
    crash.set_defaults(func=_cmd_crash)


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=f"PostgreSQL server URL (default: ${DATABASE_ENV_VAR}, else an embedded "
        "PostgreSQL 16 started for the run)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the embedded server's data directory, kept after the run (default: a temporary "
        "directory, removed at exit)",
    )


@contextlib.contextmanager
def database(
    url: str | None, data_dir: str | None, *, env: dict[str, str] | None = None
) -> Iterator[str]:
    """The server URL for a run: `url`, else `$RELIABILITY_DATABASE_URL`, else an embedded
    server for the block's duration (its data directory printed on stderr)."""
    found = url or (os.environ if env is None else env).get(DATABASE_ENV_VAR, "").strip()
    if found:
        if data_dir is not None:
            raise LoadError("--data-dir is for the embedded server; drop it or --database-url")
        yield found
        return
    announce = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        with embedded_postgres(Path(data_dir) if data_dir else None, announce=announce) as pg:
            yield pg.url
    except EmbeddedUnavailable as exc:
        raise LoadError(f"no --database-url or ${DATABASE_ENV_VAR}, and {exc}") from None


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LoadError(f"{what}: expected NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _wait(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        lo = float(low)
        hi = float(high) if high else lo
    except ValueError:
        raise LoadError(f"--wait: expected MIN or MIN-MAX seconds, got {text!r}") from None
    if not 0 <= lo <= hi:
        raise LoadError(f"--wait: need 0 <= MIN <= MAX, got {text!r}")
    return lo, hi


def _interval(text: str) -> float:
    if text.strip() in {"0", "0s"}:
        return 0.0
    return parse_duration(text, what="--cron-drain-every")


def build_load_config(args: argparse.Namespace, database_url: str) -> LoadConfig:
    """Turn the parsed arguments into a validated `LoadConfig`; raises `LoadError`."""
    shares: dict[str, float] = {}
    for key, raw in _pairs(args.share, "--share").items():
        try:
            shares[key] = float(raw)
        except ValueError:
            raise LoadError(f"--share: {key} must be a number, got {raw!r}") from None
    faults = Path(args.faults) if args.faults else None
    if faults is not None and not faults.is_file():
        raise LoadError(f"--faults: no such file {faults}")
    for flag, port in (("--service-port", args.service_port), ("--n8n-port", args.n8n_port)):
        if port:
            try:
                ensure_port_free(port, what=flag)
            except StackError as exc:
                raise LoadError(str(exc)) from None
    return LoadConfig(
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration=parse_duration(args.duration),
        out_dir=Path(args.out),
        database_url=database_url,
        thresholds=load_thresholds(args.thresholds),
        faults_file=faults,
        workers=args.workers,
        tenants=args.tenants,
        concurrency_limit=args.concurrency_limit,
        seed=args.seed,
        user_classes=tuple(c.strip() for c in args.user_classes.split(",") if c.strip()),
        shares=shares,
        wait=_wait(args.wait),
        drain_timeout=parse_duration(args.drain_timeout, what="--drain-timeout"),
        ready_timeout=parse_duration(args.ready_timeout, what="--ready-timeout"),
        cron_drain_interval=_interval(args.cron_drain_every),
        service_workers=args.service_workers,
        service_port=args.service_port,
        n8n_port=args.n8n_port,
        master_port=args.master_port,
        settings=_pairs(args.set, "--set"),
        locustfile=Path(args.locustfile),
        keep_schema=args.keep_schema,
        command=tuple(redact_argv(("reliability-harness", *sys.argv[1:]))),
    )


def run_interruptible(main: Coroutine[Any, Any, _T]) -> _T:
    """Run `main`; SIGTERM cancels it like Ctrl-C does, so its cleanup always runs.

    Raises `KeyboardInterrupt` when interrupted (after the cleanup ran).
    """

    async def runner() -> _T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await main
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


class _Outcome(Protocol):
    @property
    def table(self) -> str: ...
    @property
    def passed(self) -> bool: ...
    @property
    def results_path(self) -> Path: ...


def _run_job(
    job: str, args: argparse.Namespace, make: Callable[[str], Coroutine[Any, Any, _Outcome]]
) -> int:
    """Run one validated `load`/`crash` job on its database (`make(url)`), print its table and
    verdict, and map it to an exit code."""

    async def body() -> _Outcome:
        with database(args.database_url, args.data_dir) as url:
            return await make(url)

    try:
        outcome = run_interruptible(body())
    except LoadError as exc:
        print(f"reliability-harness {job}: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"reliability-harness {job}: interrupted; every process stopped", file=sys.stderr)
        return INTERRUPTED
    print(outcome.table)
    verdict = "PASSED" if outcome.passed else "FAILED"
    print(f"\n{job} test {verdict}; results in {outcome.results_path}")
    return OK if outcome.passed else BROKEN


def _input_error(job: str, exc: LoadError) -> int:
    print(f"reliability-harness {job}: error: {redact(str(exc))}", file=sys.stderr)
    return exc.exit_code


def _cmd_load(args: argparse.Namespace) -> int:
    require("locust")
    require("starlette")
    try:  # every argument is checked before a server or a process starts
        config = build_load_config(args, database_url="")
        preflight(config)
    except LoadError as exc:
        return _input_error("load", exc)
    return _run_job("load", args, lambda url: run_load(replace(config, database_url=url)))


def _cmd_crash(args: argparse.Namespace) -> int:
    require("starlette")
    faults = Path(args.faults) if args.faults else None
    try:
        if faults is not None:
            try:
                load_profile(faults)
            except FaultProfileError as exc:
                raise LoadError(f"--faults: {exc}") from None
        config = CrashConfig(
            database_url="",
            out_dir=Path(args.out),
            seed=args.seed,
            kills=args.kills,
            duration=parse_duration(args.duration),
            rate=args.rate,
            tenants=args.tenants,
            faults_file=faults,
            keep_schema=args.keep_schema,
        )
    except LoadError as exc:
        return _input_error("crash", exc)
    return _run_job("crash", args, lambda url: run_crash(replace(config, database_url=url)))
