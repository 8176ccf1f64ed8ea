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
        "fleet",
        "duplicate-effects",
    } <= names


def test_load_24h_is_big_enough() -> None:
    s = find_scenario("load-24h")
    assert len(s.tenants) >= 100
    assert s.traffic.events >= 100_000
    assert s.traffic.duration >= 86_400
    assert any(r.outages for r in s.n8n_faults.rules)


def test_instances_crash_independently_and_default_to_one() -> None:
    assert make().instances == 1
    s = make(
        instances=2,
        crashes=[{"at": 1, "restart": 9}, {"at": 5, "restart": 20, "instance": 2}],
    )
    assert s.instances == 2
    assert [(c.at, c.instance) for c in s.crashes] == [(1, 1), (5, 2)]
    fleet = find_scenario("fleet")
    assert fleet.instances == 3
    assert {c.instance for c in fleet.crashes} == {1, 2, 3}


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
        ({"settings": {"N8N_MAX_RETRIES": -1}}, "settings.N8N_MAX_RETRIES", "must lie in [0, 100]"),
        ({"settings": {"N8N_TYPO": 1}}, "settings.N8N_TYPO", "unknown setting"),
        ({"crashes": [{"at": 10, "restart": 5}]}, "crashes[0].restart", "not after"),
        ({"crashes": [{"at": 1, "restart": 5, "instance": 2}]}, "crashes[0].instance", "not one"),
        (
            {"instances": 2, "crashes": [{"at": 1, "restart": 9}, {"at": 5, "restart": 20}]},
            "crashes[1].at",
            "not overlap",
        ),
        ({"instances": 0}, "instances", "at least 1"),
        ({"instances": 17}, "instances", "at most 16"),
        ({"n8n": {"faults": {"rules": [{"status": {"503": 2}}]}}}, "n8n.faults.", "outside"),
        (
            {"tenants": [{"id": "x", "config": {"concurrency_limit": 999}}]},
            "tenants[0].concurrency_limit",
            "N8N_MAX_CONCURRENCY",
        ),
        ({"invariants": {"nothing_lost": {"speed": 1}}}, "invariants.nothing_lost.speed", ""),
        ({"comparison": {"kind": "race"}}, "comparison.kind", "herd, replay, aws-occ or dedupe"),
        ({"n8n": {"dedupe": "yes"}}, "n8n.dedupe", "must be true or false"),
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


DEFAULTS = [
    "nothing_lost",
    "no_double_processing",
    "backoff_bounds",
    "breaker_thresholds",
    "quotas",
    "dlq_ttl",
    "outcome_bounds",
]


@pytest.mark.parametrize(
    ("invariants", "expected"),
    [
        (None, {name: {} for name in DEFAULTS}),
        # A bound on one invariant keeps all the others (it used to switch them off).
        (
            {"outcome_bounds": {"min_delivered_ratio": 0.9}},
            {**{n: {} for n in DEFAULTS}, "outcome_bounds": {"min_delivered_ratio": 0.9}},
        ),
        ({"determinism": True}, {**{n: {} for n in DEFAULTS}, "determinism": {}}),
        ({"dlq_ttl": False}, {n: {} for n in DEFAULTS if n != "dlq_ttl"}),
        (
            {"disable": ["quotas", "dlq_ttl"], "nothing_lost": {"checkpoints": 3}},
            {
                **{n: {} for n in DEFAULTS if n not in ("quotas", "dlq_ttl")},
                "nothing_lost": {"checkpoints": 3},
            },
        ),
        (
            {"only": ["quotas", "nothing_lost"], "nothing_lost": None},
            {"nothing_lost": {}, "quotas": {}},
        ),
        (["quotas", "determinism"], {"quotas": {}, "determinism": {}}),
    ],
)
def test_invariants_merge_over_the_defaults(invariants: object, expected: object) -> None:
    scenario = make(invariants=invariants)
    assert dict(scenario.invariants) == expected
    assert list(scenario.invariants) == [n for n in [*DEFAULTS, "determinism"] if n in expected]


@pytest.mark.parametrize(
    ("invariants", "key", "problem"),
    [
        ({"only": ["quotas"], "disable": ["dlq_ttl"]}, "invariants", "not both"),
        ({"only": ["quotas"], "dlq_ttl": {}}, "invariants.dlq_ttl", "not in `only`"),
        ({"disable": ["dlq_ttl"], "dlq_ttl": {}}, "invariants.dlq_ttl", "is in `disable`"),
        ({"only": ["speed"]}, "invariants.only[0]", "unknown invariant 'speed'"),
        ({"backoff_bounds": {"checkpoints": 2}}, "invariants.backoff_bounds.checkpoints",
         "known: tolerance"),
        ({"quotas": {"tolerance": 1}}, "invariants.quotas.tolerance", "known: none"),
    ],
)  # fmt: skip
def test_invariant_choices_that_contradict_are_refused(
    invariants: object, key: str, problem: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        make(invariants=invariants)
    assert info.value.key == key
    assert problem in str(info.value)


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "syntax.yaml"
    bad.write_text("name: x\ntenants:\n  - {id: a\ntraffic: {}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert info.value.source == str(bad)
    assert "not valid YAML at line 4, column 8" in str(info.value)
    assert "<unicode string>" not in str(info.value)
