"""The fault engine: profiles (loaded, refused with key and file), stages, seeded draws."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.fakes.faults import (
    FaultEngine,
    FaultProfile,
    FaultProfileError,
    Latency,
    load_profile,
    parse_profile,
)
from harness.vclock import ManualClock


def engine(profile: dict[str, Any], *, seed: int = 0) -> tuple[FaultEngine, ManualClock]:
    clock = ManualClock()
    return FaultEngine(parse_profile(profile), clock=clock, seed=seed), clock


def labels(e: FaultEngine, n: int, path: str = "p", tenant: str = "t") -> list[str | None]:
    return [e.decide(path, tenant).label for _ in range(n)]


# --- loading and refusing -----------------------------------------------------------------

YAML = """
seed: 9
rules:
  - path: weekly-*
    tenant: acme
    status: {500: 0.1, 503: 0.2}
    reset: 0.05
    retry_after: 4
    latency: {lognormal: {median: 0.08, sigma: 0.6, max: 2}}
    outages: [{start: 10, end: 20, fault: reset}]
    flap: {up: 5, down: 1}
    rate_limit: {rate: 2, burst: 3}
    fail_first: 2
"""


def test_yaml_and_json_load_to_the_same_profile_and_round_trip(tmp_path: Path) -> None:
    y = tmp_path / "faults.yaml"
    y.write_text(YAML)
    profile = load_profile(y)
    j = tmp_path / "faults.json"
    j.write_text(json.dumps(profile.to_json()))
    assert load_profile(j) == profile
    assert parse_profile(profile.to_json()) == profile
    rule = profile.rules[0]
    assert (profile.seed, rule.path, rule.tenant, rule.statuses) == (
        9,
        "weekly-*",
        "acme",
        ((500, 0.1), (503, 0.2)),
    )
    assert rule.outages[0].fault.kind == "reset"
    assert rule.fail_first is not None
    assert rule.fail_first.fault.status == 500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{stauts: {500: 0.1}}]", "rules[0].stauts: unknown key"),
        ("rules: [{status: {500: 1.5}}]", "rules[0].status.500: probability 1.5 is outside 0..1"),
        ("rules: [{status: {500: 0.6}, reset: 0.6}]", "rules[0]: probabilities add up to 1.2"),
        ("rules: [{latency: {fixed: -0.1}}]", "rules[0].latency.fixed: negative value -0.1"),
        (
            "rules: [{latency: {uniform: {min: 0.5, max: 0.1}}}]",
            "rules[0].latency.uniform.max: 0.1 is below min 0.5",
        ),
        (
            "rules: [{outages: [{start: 20, end: 10}]}]",
            "rules[0].outages[0].end: outage end 10 is not after start 20",
        ),
        ("rules: [{status: {200: 0.1}}]", "rules[0].status.200: 200 is not an HTTP error status"),
        (
            "rules: [{fail_first: {count: 2, fault: explode}}]",
            "rules[0].fail_first.fault: 'explode'",
        ),
        ("rules: [{rate_limit: {rate: 0}}]", "rules[0].rate_limit.rate: must be above 0"),
        ("seed: x", "seed: must be an integer"),
        ("colour: red", "(top level).colour: unknown key"),
        ("rules: [{flap: {up: 1}}]", "rules[0].flap.down: missing"),
        ("rules: [{run_before_fault: 1}]", "rules[0].run_before_fault: must be true or false"),
    ],
)
def test_bad_profiles_are_refused_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(FaultProfileError) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_unreadable_and_unparsable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FaultProfileError, match=r"missing\.yaml: \(file\): cannot read"):
        load_profile(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [")
    with pytest.raises(FaultProfileError, match=r"broken\.yaml: \(file\): not valid YAML"):
        load_profile(broken)


# --- stages ---------------------------------------------------------------------------------


def test_no_matching_rule_passes_and_first_match_wins() -> None:
    e, _ = engine(
        {
            "rules": [
                {"path": "a", "tenant": "x", "status": {502: 1}},
                {"path": "a", "status": {503: 1}},
            ]
        }
    )
    assert e.decide("a", "x").label == "status:502"
    assert e.decide("a", "y").label == "status:503"
    assert e.decide("b", "x").action is None


def test_outage_window_on_the_clock() -> None:
    e, clock = engine({"rules": [{"outages": [{"start": 10, "end": 20, "fault": "close"}]}]})
    seen = []
    for _ in range(25):
        seen.append(e.decide("p", "t").label)
        clock.advance(1)
    assert seen == [None] * 10 + ["close"] * 10 + [None] * 5


def test_flapping_up_and_down() -> None:
    e, clock = engine({"rules": [{"flap": {"up": 2, "down": 1, "fault": 502}}]})
    seen = []
    for _ in range(6):
        seen.append(e.decide("p", "t").label)
        clock.advance(1)
    assert seen == [None, None, "status:502", None, None, "status:502"]


def test_fail_first_counts_per_path_and_tenant_or_globally() -> None:
    e, _ = engine({"rules": [{"fail_first": {"count": 1, "fault": "reset"}}]})
    assert [e.decide("p", t).label for t in ("a", "a", "b")] == ["reset", None, "reset"]
    g, _ = engine({"rules": [{"fail_first": {"count": 1, "scope": "global"}}]})
    assert [g.decide("p", t).label for t in ("a", "b")] == ["status:500", None]


def test_token_bucket_gives_429_with_the_time_to_the_next_token() -> None:
    e, clock = engine({"rules": [{"rate_limit": {"rate": 2, "burst": 2}}]})
    first = [e.decide("p", "t") for _ in range(3)]
    assert [d.label for d in first] == [None, None, "status:429"]
    assert first[2].action is not None
    assert first[2].action.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert e.decide("p", "t").action is None
    assert e.decide("p", "other").action is None  # each tenant has its own bucket


def test_status_mix_frequencies_follow_the_probabilities() -> None:
    e, _ = engine({"rules": [{"status": {500: 0.2, 503: 0.1}, "hang": 0.1}]}, seed=5)
    counts = Counter(labels(e, 10_000))
    assert counts["status:500"] == pytest.approx(2000, rel=0.1)
    assert counts["status:503"] == pytest.approx(1000, rel=0.15)
    assert counts["hang"] == pytest.approx(1000, rel=0.15)
    assert counts[None] == pytest.approx(6000, rel=0.05)


def test_same_seed_same_faults_and_reset_replays_them() -> None:
    profile = {
        "rules": [
            {"status": {500: 0.3}, "reset": 0.2, "latency": {"uniform": {"min": 0, "max": 1}}}
        ]
    }
    a, _ = engine(profile, seed=42)
    b, _ = engine(profile, seed=42)
    c, _ = engine(profile, seed=43)
    run_a = [(d.label, d.latency) for d in (a.decide("p", "t") for _ in range(200))]
    assert run_a == [(d.label, d.latency) for d in (b.decide("p", "t") for _ in range(200))]
    assert run_a != [(d.label, d.latency) for d in (c.decide("p", "t") for _ in range(200))]
    a.reset()
    assert run_a == [(d.label, d.latency) for d in (a.decide("p", "t") for _ in range(200))]


def test_load_at_run_time_replaces_rules_and_a_profile_seed_reseeds() -> None:
    e, _ = engine({"rules": [{"status": {500: 1}}]})
    assert e.decide("p", "t").label == "status:500"
    e.load(FaultProfile())
    assert e.decide("p", "t").action is None
    mix = {"rules": [{"status": {500: 0.5}}], "seed": 7}
    e.load(parse_profile(mix))
    first = labels(e, 50)
    e.load(parse_profile(mix))
    assert labels(e, 50) == first
    e.reset()  # back to the profile the engine started with
    assert e.decide("p", "t").label == "status:500"


def test_status_faults_stand_in_front_connection_faults_after_the_run() -> None:
    e, _ = engine({"rules": [{"path": "s", "status": {503: 1}}, {"path": "c", "close": 1}]})
    assert e.decide("s", "t").runs_workflow is False
    assert e.decide("c", "t").runs_workflow is True
    f, _ = engine({"rules": [{"close": 1, "run_before_fault": False}]})
    assert f.decide("c", "t").runs_workflow is False


# --- latency bounds (property tests) ----------------------------------------------------------


@given(
    low=st.floats(0, 10),
    span=st.floats(0, 10),
    seed=st.integers(0, 2**32),
)
def test_uniform_latency_stays_in_its_bounds(low: float, span: float, seed: int) -> None:
    import random

    lat = Latency("uniform", low=low, high=low + span)
    rng = random.Random(seed)
    for _ in range(20):
        assert low <= lat.sample(rng) <= low + span


@given(
    median=st.floats(0, 5),
    sigma=st.floats(0, 3),
    cap=st.floats(0, 10),
    seed=st.integers(0, 2**32),
)
def test_lognormal_latency_is_never_negative_nor_above_max(
    median: float, sigma: float, cap: float, seed: int
) -> None:
    import random

    lat = Latency("lognormal", median=median, sigma=sigma, max=cap)
    rng = random.Random(seed)
    for _ in range(20):
        assert 0.0 <= lat.sample(rng) <= cap


def test_lognormal_median_is_the_median() -> None:
    import random

    lat = Latency("lognormal", median=0.1, sigma=0.8)
    rng = random.Random(1)
    samples = sorted(lat.sample(rng) for _ in range(20_001))
    assert samples[10_000] == pytest.approx(0.1, rel=0.05)
