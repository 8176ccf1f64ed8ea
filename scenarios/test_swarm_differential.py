"""`--differential`: every generated run on both stores with equal traces, and a store that
differs from the other one (an injected bug on one store only) is reported with both traces'
first differing lines."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.cli.swarm import differential_scenarios
from harness.sim import Hooks
from harness.swarm.run import Options, run_one
from reliability.store import Store
from reliability.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres


class _InclusiveExpiry:
    """DLQ reads that treat `expires_at` as inclusive: an entry is still visible at it."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def dlq_get(self, entry_id: str, *, now: datetime) -> Any:
        return await self._inner.dlq_get(entry_id, now=now - timedelta(microseconds=1))


def _on_postgres_only(store: Store) -> Store:
    return _InclusiveExpiry(store) if isinstance(store, PostgresStore) else store  # type: ignore[return-value]


def test_generated_runs_give_equal_traces_on_both_stores(pg_url: str) -> None:
    for seed in (1, 2, 3):
        entry = run_one(seed, Options(differential_url=pg_url))
        assert entry["invariants"]["differential"]["passed"], entry["outcome"]
        assert entry["passed"]


def test_an_injected_store_difference_is_found_and_shown(pg_url: str, tmp_path: Path) -> None:
    options = Options(differential_url=pg_url, hooks=Hooks(store=_on_postgres_only))
    entries = (run_one(s, options) for s in range(1, 11))
    entry = next((e for e in entries if "differential" in e["broken"]), None)
    assert entry is not None, "no run of seeds 1-10 probed a dead letter at its expiry"
    details = next(
        i["details"] for i in entry["outcome"]["invariants"] if i["name"] == "differential"
    )
    assert "embedded and postgres traces differ from line" in details
    assert "dlq-probe" in details or "probe" in details
    assert entry["command"].endswith("--differential")


def test_a_catalogue_scenario_is_equal_on_both_stores(pg_url: str) -> None:
    # smoke at seed 9 used to differ in its last line (the pool's own task was counted).
    out = io.StringIO()
    code = differential_scenarios(["smoke"], 9, pg_url, stdout=out)
    assert code == 0, out.getvalue()
    assert out.getvalue().startswith("same   smoke seed 9: ")
