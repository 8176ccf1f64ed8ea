"""`reliability-harness load` for real: processes, Postgres, locust; and nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from process_support import running, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

_STARTED = re.compile(r"^started (?P<name>[\w-]+): pid (?P<pid>\d+)", re.MULTILINE)
_SCHEMA = re.compile(r"^database: schema (\w+)", re.MULTILINE)


@pytest.fixture
def env(pg_url: str) -> dict[str, str]:
    """The environment of a `load` run on the test session's server."""
    return {**os.environ, "RELIABILITY_DATABASE_URL": pg_url}


def schema_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (name,)
        ).fetchone()
    return bool(row and row[0])


def load(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "load", "--out", str(out), *args]


def assert_all_gone(stderr: str, url: str) -> dict[str, list[int]]:
    started: dict[str, list[int]] = {}
    for m in _STARTED.finditer(stderr):
        started.setdefault(m["name"], []).append(int(m["pid"]))
    pids = [p for group in started.values() for p in group]
    assert wait_for(lambda: not any(running(p) for p in pids), 10), started
    schema = _SCHEMA.search(stderr)
    assert schema is not None
    assert not schema_exists(url, schema.group(1))
    return started


def test_short_run_writes_results_checks_invariants_and_judges_thresholds(
    tmp_path: Path, env: dict[str, str]
) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(
        "max_failure_ratio: 0.0\nmin_requests: 10\n"
        "endpoints:\n  stripe new: {min_requests: 5}\n  dlq retry: {min_requests: 1000000}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["--users", "6", "--spawn-rate", "6", "--duration", "8s", "--tenants", "3"]
    proc = subprocess.run(
        load(out, *args, "--thresholds", str(thresholds), "--seed", "3"),
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    # Everything held except the impossible threshold: exit 1, and it is named in the table.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "min_requests (dlq retry)" in proc.stdout
    assert proc.stdout.count("FAILED") == 2  # that threshold's line and the verdict
    started = assert_all_gone(proc.stderr, env["RELIABILITY_DATABASE_URL"])
    assert set(started) == {"fake-n8n", "service-0", "locust"}

    for name in ("locust_stats.csv", "locust_stats.json", "locust_stats_history.csv", "stats.csv"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == "reliability-harness/load-results"
    assert results["schema_version"] == 1
    assert results["passed"] is False
    assert results["config"]["users"] == 6
    assert results["config"]["seed"] == 3
    assert results["thresholds"]["endpoints"]["dlq retry"] == {"min_requests": 1000000}
    stats = {s["name"]: s for s in results["stats"]}
    assert {"cron ok", "stripe new", "Aggregated"} <= set(stats)
    assert stats["Aggregated"]["failures"] == 0
    assert stats["Aggregated"]["requests"] == sum(
        s["requests"] for n, s in stats.items() if n != "Aggregated"
    )
    assert all(set(s) == {"name", "method", "requests", "failures", "rps", "p50", "p95", "p99",
                          "max"} for s in results["stats"])  # fmt: skip
    assert results["history"]
    assert set(results["history"][0]) == {"t", "rps", "p50", "p95", "users"}
    invariants = {i["name"]: i for i in results["invariants"]}
    assert all(i["passed"] for i in invariants.values()), invariants
    assert "0 deliveries lost" not in invariants["nothing lost"]["details"]
    # Duplicate sends are counted at n8n end to end; with no faults and no kills there are none.
    assert "every duplicate send has a cause" in invariants
    assert results["n8n"]["duplicate_sends"] == {
        "total": 0,
        "by_cause": {},
        "keys": 0,
        "examples": [],
    }
    failed = [t["name"] for t in results["threshold_results"] if not t["passed"]]
    assert failed == ["min_requests (dlq retry)"]
    # The events the users saw accepted are the ones the checks used.
    accepted = [
        json.loads(line)
        for path in (out / "accepted").glob("accepted-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert (
        len({(a["tenant_id"], a["event_id"]) for a in accepted}) == stats["stripe new"]["requests"]
    )
    assert results["n8n"]["calls"] >= stats["stripe new"]["requests"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_process(
    tmp_path: Path, sig: signal.Signals, env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    err = tmp_path / "stderr.txt"
    with err.open("w") as fh:
        proc = subprocess.Popen(
            load(out, "--users", "2", "--spawn-rate", "2", "--duration", "5m", "--workers", "1"),
            stdout=subprocess.DEVNULL,
            stderr=fh,
            env=env,
        )
    try:
        assert wait_for(lambda: "locust: " in err.read_text(), 60), err.read_text()
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert "interrupted; every process stopped" in text
    started = assert_all_gone(text, env["RELIABILITY_DATABASE_URL"])
    assert set(started) == {"fake-n8n", "service-0", "locust", "locust-worker"}


def test_failure_after_start_stops_every_process(tmp_path: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        load(tmp_path / "out", "--ready-timeout", "0.001s"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 3
    assert "fake-n8n not ready" in proc.stderr
    started = assert_all_gone(proc.stderr, env["RELIABILITY_DATABASE_URL"])
    assert started == {"fake-n8n": started["fake-n8n"]}


def test_duplicate_sends_are_counted_end_to_end_with_their_cause(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """n8n runs the workflow and then holds 30% of the calls far past the read timeout: the
    dispatcher gives up, the retry sends the delivery again; the run counts those duplicates as
    a figure with their cause (`timeout`), and they do not fail it. (Held calls, not a latency
    near the timeout: an answer finishing as the client gives up would be a 2xx twice.)"""
    faults = tmp_path / "hang.yaml"
    faults.write_text(
        "seed: 5\nrules:\n  - path: '*'\n    hang: 0.3\n    hang_for: 5\n", encoding="utf-8"
    )
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("min_requests: 5\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--users", "4", "--spawn-rate", "4", "--duration", "6s", "--tenants", "2"]
    proc = subprocess.run(
        load(
            out,
            *args,
            "--user-classes",
            "stripe",
            "--faults",
            str(faults),
            "--set",
            "N8N_READ_TIMEOUT_MS=300",
            "--thresholds",
            str(thresholds),
            "--seed",
            "4",
        ),
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_gone(proc.stderr, env["RELIABILITY_DATABASE_URL"])
    results = json.loads((out / "results.json").read_text())
    duplicates = results["n8n"]["duplicate_sends"]
    assert duplicates["total"] > 0
    assert duplicates["by_cause"] == {"timeout": duplicates["total"]}
    assert duplicates["examples"][0]["cause"] == "timeout"
    invariants = {i["name"]: i for i in results["invariants"]}
    explained = invariants["every duplicate send has a cause"]
    assert explained["passed"]
    assert f"{duplicates['total']} duplicate sends at n8n by cause: " in explained["details"]
    assert "every duplicate send has a cause" in proc.stdout
