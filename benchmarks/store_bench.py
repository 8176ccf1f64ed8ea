"""PostgresStore throughput beside pgbench running the same SQL, in the same run, same database.

Two workloads, 8 connections each: `accept_event` (replay-guard insert + ledger upsert + outbox
insert, one statement) and `claim_due(1)` + `complete` (two statements). The pgbench twins are
the `*.pgbench.sql` files beside this script. Target: the store reaches >= 0.5 of pgbench.

    python benchmarks/store_bench.py [--url URL] [--clients 8] [--ops 1000]

The URL defaults to RELIABILITY_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
Everything happens in a fresh schema that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from reliability.store import NewDelivery, PostgresStore, open_postgres

HERE = Path(__file__).parent
NOW = datetime(2031, 1, 1, tzinfo=UTC)  # the pgbench scripts use the same instant
LEASE = timedelta(minutes=1)
TARGET = 0.5


def pgbench(pgbench_bin: str, url: str, schema: str, script: str, clients: int, ops: int) -> float:
    """Run pgbench with a custom script; return its tps (without connection time)."""
    env = {**os.environ, "PGOPTIONS": f"-c search_path={schema}"}
    cmd = [pgbench_bin, "-n", "-c", str(clients), "-j", "2", "-t", str(ops), "-f", script, url]
    out = subprocess.run(  # noqa: S603 (our own argv, no shell)
        cmd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if out.returncode != 0:
        raise SystemExit(f"pgbench failed ({out.returncode}):\n{out.stderr}{out.stdout}")
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if failed and int(failed.group(1)):
        raise SystemExit(f"pgbench had failed transactions:\n{out.stdout}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    if tps is None:
        raise SystemExit(f"cannot read tps from pgbench output:\n{out.stdout}")
    return float(tps.group(1))


async def timed(clients: int, ops: int, one: Callable[[int, int], Awaitable[None]]) -> float:
    """Run `ops` calls on each of `clients` tasks; return calls per second."""

    async def client(k: int) -> None:
        for i in range(ops):
            await one(k, i)

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return clients * ops / (time.perf_counter() - start)


async def prefill(store: PostgresStore, rows: int) -> None:
    """`rows` pending outbox rows, written as the intake writes them: events of 1,000."""
    for start in range(0, rows, 1000):
        event = f"fill-{uuid.uuid4()}"
        batch = [
            NewDelivery("bench", "wf", {"n": i, "s": "bench"}, f"{event}-{i}", event)
            for i in range(start, min(rows, start + 1000))
        ]
        assert (await store.accept_event("bench", event, batch, now=NOW)).new


async def run(url: str, clients: int, ops: int, pgbench_bin: str) -> int:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = open_postgres(url, schema=schema, min_size=clients, max_size=clients)
    run_id, serial = uuid.uuid4().hex[:8], itertools.count()
    results: list[tuple[str, float, float]] = []
    try:
        await store.migrate()
        await store.ping()

        async def accept(k: int, i: int) -> None:
            tenant, event = f"py-{k}", f"evt_{run_id}_{next(serial)}"
            d = NewDelivery(tenant, "wf", {"n": i, "s": "bench"}, f"key-{event}", event)
            result = await store.accept_event(tenant, event, [d], now=NOW)
            assert result.new

        await timed(clients, max(1, ops // 10), accept)  # warm-up: connections, prepared plans
        py = await timed(clients, ops, accept)
        pg = pgbench(pgbench_bin, url, schema, str(HERE / "accept_event.pgbench.sql"), clients, ops)
        results.append(("replay guard + outbox insert (accept_event)", py, pg))

        async def claim_complete(k: int, i: int) -> None:
            [row] = await store.claim_due(1, now=NOW, lease=LEASE)
            assert row.lease_token is not None
            assert await store.complete(row.id, row.lease_token, now=NOW + timedelta(seconds=1))

        # Clear what the accept runs wrote, then give each side exactly its rows.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("TRUNCATE {}.outbox").format(sql.Identifier(schema)))
        await prefill(store, clients * ops)
        py = await timed(clients, ops, claim_complete)
        assert await store.outbox_rows() == []
        await prefill(store, clients * ops)
        script = str(HERE / "claim_complete.pgbench.sql")
        pg = pgbench(pgbench_bin, url, schema, script, clients, ops)
        if await store.outbox_rows():  # both sides must really have claimed and completed all
            raise SystemExit("pgbench claim/complete left rows undone: the script is wrong")
        results.append(("claim_due(1) + complete", py, pg))
    finally:
        await store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    print(f"{clients} connections, {ops} ops per connection, schema {schema} (dropped)")
    print(f"{'workload':48} {'store/s':>10} {'pgbench/s':>10} {'ratio':>7}")
    ok = True
    for name, py, pg in results:
        ratio = py / pg
        ok &= ratio >= TARGET
        print(f"{name:48} {py:10.0f} {pg:10.0f} {ratio:7.2f}")
    print(f"target ratio >= {TARGET}: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_url = os.environ.get(
        "RELIABILITY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--url", default=default_url)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ops", type=int, default=1000, help="operations per connection")
    parser.add_argument("--pgbench", default=shutil.which("pgbench") or "/usr/bin/pgbench")
    args, _ = parser.parse_known_args()  # `python -m benchmarks store` passes its own args
    try:
        import uvloop

        runner: Callable[..., int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(run(args.url, args.clients, args.ops, args.pgbench))


if __name__ == "__main__":
    status = main()
    if status:  # only on failure: `python -m benchmarks` runs the other benches after this one
        sys.exit(status)
