"""The scenario format: the catalogue loads, and bad files are refused naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sim.scenario import ScenarioError, find_scenario, load_catalogue, load_scenario
from scenarios.conftest import make


def test_catalogue_loads_and_has_the_required_scenarios() -> None:
    names = {s.name for s in load_catalogue()}
    assert {
        "smoke",
        "jitter-bounds",
        "breaker-thresholds",
        "dlq-ttl",
        "replay-protection",
        "herd",
        "replay-comparison",
        "crash-restart",
        "load-24h",
    } <= names


def test_load_24h_is_big_enough() -> None:
    s = find_scenario("load-24h")
    assert len(s.tenants) >= 100
    assert s.traffic.events >= 100_000
    assert s.traffic.duration >= 86_400
    assert any(r.outages for r in s.n8n_faults.rules)


def test_tenant_groups_expand_with_the_seed_json_shape() -> None:
    s = make(
        tenants=[
            {
                "id": "t-{i}",
                "count": 2,
                "config": {"concurrency_limit": 4, "retry_policy": {"max_retries": 7}},
            }
        ]
    )
    assert s.tenants == ("t-0", "t-1")
    assert s.settings.tenant("t-1").concurrency_limit == 4
    assert s.settings.tenant("t-1").retry.max_retries == 7
    assert s.settings.tenants["t-0"].stripe_webhook_secrets


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"trafic": {}}, "trafic", "unknown key"),
        ({"traffic": {"events": "many"}}, "traffic.events", "whole number"),
        ({"traffic": {"mix": {"invoice.void": 1}}}, "traffic.mix.invoice.void", "unknown event"),
        ({"stripe": {"duplicates": 1.5}}, "stripe.duplicates", "outside 0..1"),
        ({"settings": {"N8N_MAX_RETRIES": -1}}, "settings.N8N_MAX_RETRIES", ">= 0"),
        ({"settings": {"N8N_TYPO": 1}}, "settings.N8N_TYPO", "unknown setting"),
        ({"crashes": [{"at": 10, "restart": 5}]}, "crashes[0].restart", "not after"),
        ({"n8n": {"faults": {"rules": [{"status": {"503": 2}}]}}}, "n8n.faults.", "outside"),
        (
            {"tenants": [{"id": "x", "config": {"concurrency_limit": 999}}]},
            "tenants[0].concurrency_limit",
            "N8N_MAX_CONCURRENCY",
        ),
        ({"invariants": {"nothing_lost": {"speed": 1}}}, "invariants.nothing_lost.speed", ""),
        ({"comparison": {"kind": "race"}}, "comparison.kind", "herd or replay"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as info:
        make(**data)
    assert info.value.source == "<suite>"
    assert info.value.key.startswith(key), info.value.key
    assert problem in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\ntraffic: {events: [1]}\ntenants: [{id: a}]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert str(bad) in str(info.value)
    assert "traffic.events" in str(info.value)
    (tmp_path / "syntax.yaml").write_text("name: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(tmp_path / "syntax.yaml")
    with pytest.raises(ScenarioError, match="no such scenario"):
        find_scenario("does-not-exist")
