"""The embedded store's cost per event as it grows: early rows against rows 100,000 in.

A plain SQLite `:memory:` database's COMMIT grows with the database's size, which made long
simulations quadratic; `SqliteStore(":memory:")` opens a `memdb` database instead. This runs
`accept_event` (claimed at intake) + `complete`, the simulator's two writes per event, for the
first rows and again after `--rows` more, on both kinds of database in the same run. Target:
memdb's late throughput >= 1.2 x plain `:memory:`'s (some decline is natural: the b-trees deepen).

    python benchmarks/sqlite_bench.py [--rows 100000] [--sample 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

from reliability.store import NewDelivery, SqliteStore

NOW = datetime(2031, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=1)
TARGET = 1.2
PAYLOAD = {
    "object": {"id": "in_bench", "amount_due": 4200, "lines": [f"il_{n:06d}" for n in range(120)]}
}


async def events(store: SqliteStore, start: int, count: int) -> float:
    """Accept and complete `count` events; events per second."""
    began = time.perf_counter()
    for i in range(start, start + count):
        delivery = NewDelivery("bench", "wf", PAYLOAD, f"k-{i}", f"evt_{i}")
        result = await store.accept_event("bench", f"evt_{i}", [delivery], now=NOW, lease=LEASE)
        [row] = result.claimed
        assert await store.complete(row.id, row.lease_token or "", now=NOW)
    return count / (time.perf_counter() - began)


async def grow(rows: int, sample: int) -> tuple[float, float]:
    """Events per second for the first `sample` events and for `sample` after `rows` more."""
    store = SqliteStore(":memory:", synchronous="OFF")
    try:
        await store.migrate()
        early = await events(store, 0, sample)
        await events(store, sample, rows)
        late = await events(store, sample + rows, sample)
    finally:
        await store.close()
    return early, late


def _plain(path: str, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)


async def run(rows: int, sample: int) -> int:
    results = {"memdb": await grow(rows, sample)}
    with mock.patch("reliability.store.sqlite._connect", _plain):
        results["plain :memory:"] = await grow(rows, sample)
    for name, (early, late) in results.items():
        print(
            f"{name:<15} accept_event+complete: first {sample:,} events {early:,.0f}/s,"
            f" after {rows:,} more {late:,.0f}/s (late/early {late / early:.2f})"
        )
    ratio = results["memdb"][1] / results["plain :memory:"][1]
    verdict = "ok" if ratio >= TARGET else f"BELOW the {TARGET} target"
    print(f"  late throughput memdb / plain {ratio:.2f} ({verdict})")
    return 0 if ratio >= TARGET else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.rows, args.sample))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
