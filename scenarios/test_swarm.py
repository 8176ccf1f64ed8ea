"""Swarm testing: generated scenarios are valid, seeded, round-trip as YAML, and run as a swarm."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from harness.chaos.invariants import check_run
from harness.cli import main
from harness.cli.swarm import SwarmRequest, run_swarm_command
from harness.report.model import load_results
from harness.report.swarm import merge_entries, read_swarm_sections, swarm_summary
from harness.sim import simulate
from harness.sim.scenario import load_scenario
from harness.swarm.coverage import EXPECTED, coverage, merge, unreached
from harness.swarm.generate import FAULT_KINDS, enabled_kinds, generate, scenario_of
from harness.swarm.reproducer import dump
from harness.swarm.run import Options, run_one, run_swarm
from harness.swarm.shard import Shard, ShardError, parse_duration, parse_shard, run_seeds
from scenarios.conftest import make


def test_generated_documents_are_valid_and_vary() -> None:
    kinds_seen: set[str] = set()
    subsets = set()
    for seed in range(300):
        doc = generate(seed)
        scenario_of(doc)  # raises when invalid
        kinds = enabled_kinds(doc)
        kinds_seen.update(kinds)
        subsets.add(kinds)
    assert kinds_seen == set(FAULT_KINDS)
    assert len(subsets) > 250  # swarm: nearly every run enables a different subset


def test_same_seed_same_scenario_same_trace_hash() -> None:
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)
    first = simulate(scenario_of(generate(7)), seed=7)
    again = simulate(scenario_of(generate(7)), seed=7)
    assert first.trace_hash == again.trace_hash
    assert run_one(7)["trace_hash"] == first.trace_hash


def test_yaml_round_trips_through_the_parser(tmp_path: Path) -> None:
    for seed in range(40):
        doc = generate(seed)
        path = tmp_path / f"{doc['name']}.yaml"
        path.write_text(dump(doc), encoding="utf-8")
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == doc
        loaded = load_scenario(path)
        assert replace(loaded, file="x") == replace(scenario_of(doc), file="x")


def test_a_swarm_writes_results_the_report_reads(tmp_path: Path) -> None:
    out = io.StringIO()
    request = SwarmRequest(runs=3, seed=40, out=tmp_path, quiet=True, command="test")
    assert run_swarm_command(request, stdout=out, stderr=io.StringIO()) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    swarm = doc["swarm"]
    assert [e["seed"] for e in swarm["entries"]] == [40, 41, 42]
    assert swarm["summary"]["runs"] == 3
    assert swarm["summary"]["invariants"]["nothing_lost"]["held"] == 3
    assert all(
        e["command"] == f"reliability-harness chaos --swarm 1 --seed {e['seed']}"
        for e in swarm["entries"]
    )
    assert load_results(tmp_path).scenarios == ()  # still a valid chaos results file
    assert "3 run(s)" in out.getvalue()


def test_options_default_to_the_embedded_store() -> None:
    entry = run_one(3, Options())
    assert entry["passed"], entry["broken"]
    assert set(entry["invariants"]) >= {"nothing_lost", "quotas", "dlq_ttl"}
    assert entry["coverage"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("3/2", "between 1 and M"), ("0/2", "between 1 and M"), ("1", "I/M"), ("a/b", "I/M")],
)
def test_bad_shards_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ShardError, match=problem):
        parse_shard(text)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "10m", "1.5h")] == [90, 90, 600, 5400]
    with pytest.raises(ShardError, match="positive duration"):
        parse_duration("10 minutes")


def test_shards_are_disjoint_and_cover_the_swarm() -> None:
    whole = [s for _, s in run_seeds(100, 10)]
    parts = [[s for _, s in run_seeds(100, 10, Shard(i, 3))] for i in (1, 2, 3)]
    assert sorted(s for p in parts for s in p) == whole == list(range(100, 110))
    assert parts[0] == [100, 103, 106, 109]


def test_a_time_budget_stops_starting_runs() -> None:
    ticks = iter(range(1000))
    entries = run_swarm(5, None, Options(), budget=2.5, clock=lambda: float(next(ticks)))
    # the clock reads 0 at the start, then 1 and 2 before runs 1 and 2, 3 stops
    assert [e["seed"] for e in entries] == [5, 6]


def test_two_shards_merged_give_the_report_of_one_run(tmp_path: Path) -> None:
    def swarm(out: Path, shard: str, jobs: int) -> None:
        request = SwarmRequest(runs=4, seed=20, shard=shard, jobs=jobs, out=out, quiet=True)
        run_swarm_command(request, stdout=io.StringIO(), stderr=io.StringIO())

    swarm(tmp_path / "a", "1/2", 1)
    swarm(tmp_path / "b", "2/2", 1)
    swarm(tmp_path / "whole", "1/1", 2)
    merged = read_swarm_sections([tmp_path / "a", tmp_path / "b"])
    whole = read_swarm_sections([tmp_path / "whole"])
    assert [e["seed"] for e in merged[0]["entries"]] == [20, 22]
    assert swarm_summary(merge_entries(merged), EXPECTED) == swarm_summary(
        merge_entries(whole), EXPECTED
    )
    for name in ("a", "whole"):
        assert main(["report", str(tmp_path / name), "--out", str(tmp_path / f"r-{name}")]) == 0
    assert (
        main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "r")])
        == 0
    )

    def section(report: str) -> str:
        text = (tmp_path / report / "summary.md").read_text()
        return text[text.index("## Swarm") :]

    assert section("r") == section("r-whole") != section("r-a")
    assert 'id="swarm-h"' in (tmp_path / "r" / "index.html").read_text()


def test_coverage_counts_what_a_run_exercised() -> None:
    scenario = make(
        settings={
            "N8N_CIRCUIT_BREAKER_THRESHOLD": 2,
            "N8N_MAX_RETRIES": 1,
            "N8N_DLQ_TTL_HOURS": 0.05,
        },
        n8n={"faults": {"rules": [{"outages": [{"start": 100, "end": 300, "fault": 500}]}]}},
        crashes=[{"at": 400, "restart": 420}],
        dlq={"probes": 3},
    )
    run = simulate(scenario)
    counts = coverage(run)
    opened = sum(
        1
        for _, _, e in run.records.events
        if type(e).__name__ == "BreakerChanged" and e.new.value == "OPEN"
    )
    assert counts["breaker:CLOSED->OPEN"] + counts.get("breaker:HALF_OPEN->OPEN", 0) == opened > 0
    assert counts["dlq:HTTP_5XX"] == run.figures["dead_lettered"] > 0
    assert counts["crash:idle"] + counts.get("crash:with_work_in_flight", 0) == 1
    assert counts["n8n:status:500"] > 0
    assert counts["dlq:probe"] == len(run.records.probes) > 0
    total = merge([counts, counts])
    assert total["n8n:status:500"] == 2 * counts["n8n:status:500"]
    missing = unreached(total)
    assert "breaker:CLOSED->OPEN" not in missing
    assert "stripe:replay" in missing  # this scenario sends no replays


def test_a_delivery_dead_lettered_again_after_a_manual_retry_is_checked_right() -> None:
    """Regression (found by the swarm, seed 1): a delivery retried by hand, dead-lettered
    again under the same DLQ id and retried again broke dlq_ttl falsely, because the checker
    only knew the last entry per DLQ id."""
    scenario = make(
        tenants=[{"id": "t", "config": {"retry_policy": {"max_retries": 0}}}],
        traffic={"events": 3, "duration": 60},
        n8n={"faults": {"rules": [{"status": {"500": 1.0}}]}},
        dlq={"retries": [{"at": 200, "count": 3}, {"at": 500, "count": 3}], "probes": 0},
    )
    run = simulate(scenario)
    (result,) = check_run(run, ["dlq_ttl"])
    assert result.passed, result.details
    again = [r for r in run.records.retries if r.new_outbox_id is not None and r.t >= 500]
    assert again
    assert all(r.retry_count == 1 for r in again)  # each went through the DLQ twice
    assert result.checked >= 6


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--swarm", "2", "--scenario", "smoke"], "give --scenario or --swarm"),
        (["--swarm", "1", "--shard", "3/2"], "between 1 and M"),
        (["--swarm", "0"], "at least 1"),
        (["--for", "soon"], "positive duration"),
    ],
)
def test_bad_swarm_options_exit_two(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["chaos", *argv, "--out", str(tmp_path)]) == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


CATALOGUE = Path(__file__).parent / "catalogue"


def test_a_call_slower_than_the_read_timeout_keeps_its_delivery_to_itself() -> None:
    """Found by the swarm (seed 802 of 1000): the fake's in-process transport let a slow answer
    run past the client's read timeout, and a caller's deadline left the call in flight at the
    fake forever. Fixed: the transport times out as httpx does, and a client that gives up ends
    its call (outcome `gave_up`, the workflow still runs)."""
    scenario = load_scenario(CATALOGUE / "slow-n8n-deadline.yaml")
    (result,) = check_run(simulate(scenario, seed=802), ["no_double_processing"])
    assert result.passed, result.details
