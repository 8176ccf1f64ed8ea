"""SqliteStore specifics: URLs, WAL, and several processes sharing one file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE

import pytest
from slots_support import check_slots_free_and_expire

from reliability.store import (
    InvalidInput,
    NewDelivery,
    SqliteStore,
    StoreError,
    StoreUnavailable,
    open_store,
)

T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
LEASE = timedelta(seconds=60)


async def test_open_store_parses_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel.db")
    memory = [open_store(u) for u in ("sqlite://", "sqlite://:memory:", "sqlite:///:memory:")]
    try:
        assert isinstance(absolute, SqliteStore)
        assert absolute.path == f"{tmp_path}/abs.db"
        assert isinstance(relative, SqliteStore)
        assert relative.path == "rel.db"
        for store in (absolute, relative, *memory):
            await store.migrate()
            assert (await store.accept_event("t", "e", [], now=T0)).new
        assert (tmp_path / "abs.db").exists()
        assert (tmp_path / "rel.db").exists()
    finally:
        for store in (absolute, relative, *memory):
            await store.close()
    with pytest.raises(InvalidInput, match="unknown scheme 'mysql'"):
        open_store("mysql://root@localhost/db")


async def test_a_file_store_uses_wal_and_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    await store.migrate()
    delivery = NewDelivery("t", "wf", {"a": [1, 2]}, "k", "e")
    (oid,) = (await store.accept_event("t", "e", [delivery], now=T0)).outbox_ids
    await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = SqliteStore(path)
    try:
        await again.migrate()
        [row] = await again.outbox_rows()
        assert (row.id, row.payload, row.created_at) == (oid, {"a": [1, 2]}, T0)
    finally:
        await again.close()


async def test_an_edited_migration_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    try:
        await store.migrate()
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE reliability_migrations SET checksum = 'x'")
        with pytest.raises(StoreError, match=r"sqlite/0001_schema\.sql was changed"):
            await store.migrate()
    finally:
        await store.close()


async def test_an_unopenable_file_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open"):
        SqliteStore(str(tmp_path / "missing-dir" / "s.db"))


async def test_a_busy_writer_is_store_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path, busy_timeout=0.05)
    await store.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.accept_event("t", "e", [NewDelivery("t", "wf", {}, "k")], now=T0)
        other.execute("ROLLBACK")
        assert not await store.is_processed("t", "e")
        assert await store.outbox_rows() == []
    finally:
        other.close()
        await store.close()


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from datetime import UTC, datetime, timedelta
    from reliability.store import NewDelivery, SqliteStore

    async def main(path, k):
        store = SqliteStore(path, busy_timeout=60.0)  # a busy machine must not fail the test
        await store.migrate()
        now = datetime(2031, 5, 6, tzinfo=UTC)
        won = []
        for i in range(150):
            e = f"evt_{i}"
            d = NewDelivery("t", "wf", {"i": i}, f"k{i}", e)
            if (await store.accept_event("t", e, [d], now=now)).new:
                won.append(e)
        claimed = []
        for _ in range(1000):
            rows = await store.claim_due(7, now=now, lease=timedelta(minutes=5))
            if not rows:
                break
            for r in rows:
                assert await store.complete(r.id, r.lease_token, now=now)
                claimed.append(r.id)
        await store.close()
        print(json.dumps({"won": won, "claimed": claimed}))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_several_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, path, str(k), stdout=PIPE, stderr=PIPE
        )
        for k in range(3)
    ]
    outputs = []
    for p in procs:
        out, errout = await asyncio.wait_for(p.communicate(), timeout=60)
        assert p.returncode == 0, errout.decode()
        outputs.append(json.loads(out))
    won = Counter(e for o in outputs for e in o["won"])
    claimed = Counter(i for o in outputs for i in o["claimed"])
    assert sorted(won) == sorted(f"evt_{i}" for i in range(150))
    assert set(won.values()) == {1}
    assert len(claimed) == 150
    assert set(claimed.values()) == {1}
    store = SqliteStore(path)
    try:
        assert await store.applied_migrations() == [1, 2, 3]
        assert len(await store.delivered_keys()) == 150
    finally:
        await store.close()


async def test_fleet_slots_hold_a_tenant_limit_across_handles_on_one_file_and_expire(
    tmp_path: Path,
) -> None:
    """Two handles on one file (two processes, or two simulated instances) share the limit."""
    path = str(tmp_path / "slots.db")
    a, b = SqliteStore(path), SqliteStore(path)
    try:
        await a.migrate()
        until = T0 + LEASE
        got = [await s.slot_acquire("t", 2, now=T0, until=until) for s in (a, b, a)]
        held = [g for g in got if g is not None]
        assert len(held) == 2
        assert got[2] is None
        await check_slots_free_and_expire(a, b, held, now=T0, until=until, lease=LEASE)
    finally:
        await a.close()
        await b.close()
