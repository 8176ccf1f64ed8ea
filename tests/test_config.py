from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reliability.backoff import Strategy
from reliability.config import ConfigError, Settings, load_settings, load_tenants, parse_dotenv

# The seed's .env, verbatim: comments after values included.
SEED_DOTENV = """\
# n8n Configuration
N8N_WEBHOOK_URL=https://your-n8n-instance.com/webhook
N8N_API_KEY=your-api-key

# Reliability Settings
N8N_MAX_RETRIES=3
N8N_BASE_DELAY_MS=1000
N8N_MAX_DELAY_MS=30000
N8N_JITTER_FACTOR=0.1

# Circuit Breaker Settings
N8N_CIRCUIT_BREAKER_THRESHOLD=10
N8N_CIRCUIT_BREAKER_WINDOW_MS=600000  # 10 minutes
N8N_CIRCUIT_BREAKER_RECOVERY_MS=300000  # 5 minutes

# DLQ Settings
N8N_DLQ_TTL_HOURS=24
N8N_DLQ_CLEANUP_INTERVAL_MS=3600000  # 1 hour

# Concurrency Settings
N8N_DEFAULT_CONCURRENCY=5
N8N_MAX_CONCURRENCY=20
"""

SEED_TENANT = {
    "tenant_id": "tenant-123",
    "concurrency_limit": 10,
    "circuit_breaker_threshold": 15,
    "retry_policy": {"max_retries": 5, "base_delay_ms": 2000, "max_delay_ms": 60000},
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_seeds() -> None:
    s = load_settings({})
    assert (s.n8n_max_retries, s.n8n_base_delay_ms, s.n8n_max_delay_ms) == (3, 1000, 30000)
    assert s.n8n_jitter_factor == 0.1
    assert s.n8n_circuit_breaker_threshold == 10
    assert s.n8n_circuit_breaker_window_ms == 600_000
    assert s.n8n_circuit_breaker_recovery_ms == 300_000
    assert s.n8n_dlq_ttl_hours == 24
    assert s.n8n_dlq_cleanup_interval_ms == 3_600_000
    assert (s.n8n_default_concurrency, s.n8n_max_concurrency) == (5, 20)
    assert s.cron_secret == ""
    assert s.breaker_policy.window == 600.0
    assert s.breaker_policy.recovery == 300.0


def test_the_seeds_dotenv_loads_with_its_trailing_comments(tmp_path: Path) -> None:
    s = load_settings({}, dotenv=write(tmp_path, ".env", SEED_DOTENV))
    assert s.n8n_webhook_url == "https://your-n8n-instance.com/webhook"
    assert s.n8n_api_key == "your-api-key"
    assert s.n8n_circuit_breaker_window_ms == 600_000
    assert s.n8n_dlq_cleanup_interval_ms == 3_600_000


def test_environment_overrides_dotenv(tmp_path: Path) -> None:
    path = write(tmp_path, ".env", "N8N_MAX_RETRIES=3\nCRON_SECRET=from-file\n")
    s = load_settings({"N8N_MAX_RETRIES": "7"}, dotenv=path)
    assert s.n8n_max_retries == 7
    assert s.cron_secret == "from-file"


def test_dotenv_quotes_keep_hashes_and_export_is_allowed() -> None:
    values = parse_dotenv("export CRON_SECRET='a#b c'  # note\nN8N_API_KEY=\"x y\"\nA=b#c\n")
    assert values == {"CRON_SECRET": "a#b c", "N8N_API_KEY": "x y", "A": "b#c"}


def test_unrelated_variables_are_ignored() -> None:
    s = load_settings({"PATH": "/bin", "HOME": "/root", "DATABASE_URL": "x"})
    assert s == Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"N8N_MAX_RETRIES": "three"},
            "N8N_MAX_RETRIES (environment): must be a whole number, got 'three'",
        ),
        (
            {"N8N_BASE_DELAY_MS": "-5"},
            "N8N_BASE_DELAY_MS (environment): must lie in [1, 3600000] ms, got -5",
        ),
        (
            {"N8N_MAX_DELAY_MS": "0"},
            "N8N_MAX_DELAY_MS (environment): must lie in [1, 86400000] ms, got 0",
        ),
        (
            {"N8N_BASE_DELAY_MS": "5000", "N8N_MAX_DELAY_MS": "1000"},
            "N8N_MAX_DELAY_MS (environment): must be at least N8N_BASE_DELAY_MS (5000), got 1000",
        ),
        (
            {"N8N_JITTER_FACTOR": "1.5"},
            "N8N_JITTER_FACTOR (environment): must lie in [0, 1], got 1.5",
        ),
        (
            {"N8N_JITTER_FACTOR": "-0.1"},
            "N8N_JITTER_FACTOR (environment): must lie in [0, 1], got -0.1",
        ),
        (
            {"N8N_JITTER_FACTOR": "nan"},
            "N8N_JITTER_FACTOR (environment): must be a number, got 'nan'",
        ),
        (
            {"N8N_DEFAULT_CONCURRENCY": "30"},
            "N8N_DEFAULT_CONCURRENCY (environment): must not exceed N8N_MAX_CONCURRENCY (20), "
            "got 30",
        ),
        (
            {"N8N_BACKOFF_STRATEGY": "random"},
            "N8N_BACKOFF_STRATEGY (environment): must be one of none, additive, full, equal, "
            "decorrelated, got 'random'",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value) == message


def test_bad_dotenv_value_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "app.env", "N8N_MAX_DELAY_MS=soon  # oops\n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, dotenv=path)
    assert info.value.key == "N8N_MAX_DELAY_MS"
    assert info.value.source == str(path)
    assert str(info.value) == f"N8N_MAX_DELAY_MS ({path}): must be a whole number, got 'soon'"


def test_malformed_dotenv_line_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, ".env", "N8N_MAX_RETRIES=3\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"line 2 \(.*\.env\): expected NAME=value"):
        load_settings({}, dotenv=path)


def test_missing_dotenv_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, dotenv=tmp_path / "nope.env")


# -- tenants ------------------------------------------------------------------------------------


def tenants_file(tmp_path: Path, data: Any) -> Path:
    return write(tmp_path, "tenants.json", json.dumps(data))


def test_the_seeds_tenant_loads_and_overrides_globals(tmp_path: Path) -> None:
    s = load_settings({}, tenants_file=tenants_file(tmp_path, SEED_TENANT))
    t = s.tenant("tenant-123")
    assert t.concurrency_limit == 10
    assert t.breaker.threshold == 15
    assert (t.retry.max_retries, t.retry.base_delay_ms, t.retry.max_delay_ms) == (5, 2000, 60000)
    assert t.retry.jitter_factor == 0.1  # not in the tenant: inherited
    assert t.dlq_ttl == timedelta(hours=24)


def test_missing_tenant_fields_inherit_and_unknown_tenants_get_globals(tmp_path: Path) -> None:
    data = [{"tenant_id": "a", "retry_policy": {"max_retries": 1}}, {"tenant_id": "b"}]
    s = load_settings({"N8N_DEFAULT_CONCURRENCY": "4"}, tenants_file=tenants_file(tmp_path, data))
    assert s.tenant("a").retry.max_retries == 1
    assert s.tenant("a").retry.base_delay_ms == 1000
    assert s.tenant("b").concurrency_limit == 4
    assert s.tenant("zzz").concurrency_limit == 4
    assert s.tenant("zzz").breaker.threshold == 10


def test_tenants_file_from_environment(tmp_path: Path) -> None:
    path = tenants_file(tmp_path, [SEED_TENANT])
    s = load_settings({"RELIABILITY_TENANTS_FILE": str(path)})
    assert "tenant-123" in s.tenants


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"tenant_id": "a", "colour": "red"}, "tenants[0].colour", "unknown key"),
        (
            {"tenant_id": "a", "retry_policy": {"retries": 2}},
            "tenants[0].retry_policy.retries",
            "unknown key",
        ),
        (
            [{"tenant_id": "a"}, {"tenant_id": "a"}],
            "tenants[1].tenant_id",
            "duplicate tenant id 'a'",
        ),
        (
            {"tenant_id": "a", "concurrency_limit": 21},
            "tenants[0].concurrency_limit",
            "21 exceeds N8N_MAX_CONCURRENCY (20)",
        ),
        (
            {"tenant_id": "a", "concurrency_limit": "10"},
            "tenants[0].concurrency_limit",
            "must be a number, got '10'",
        ),
        (
            {"tenant_id": "a", "retry_policy": {"base_delay_ms": -1}},
            "tenants[0].retry_policy.base_delay_ms",
            "must be at least 1, got -1",
        ),
        (
            {"tenant_id": "a", "retry_policy": {"base_delay_ms": 0}},
            "tenants[0].retry_policy.base_delay_ms",
            "must be at least 1, got 0",
        ),
        (
            {"tenant_id": "a", "retry_policy": {"base_delay_ms": 5000, "max_delay_ms": 100}},
            "tenants[0].retry_policy.max_delay_ms",
            "must be at least base_delay_ms (5000), got 100",
        ),
        (
            {"tenant_id": "a", "retry_policy": {"base_delay_ms": 40000}},
            "tenants[0].retry_policy.max_delay_ms",
            "must be at least base_delay_ms (40000), got 30000",
        ),
        ({"concurrency_limit": 1}, "tenants[0].tenant_id", "must be a string"),
        ([1], "tenants[0]", "must be a JSON object"),
    ],
)
def test_bad_tenants_name_the_key_and_the_file(
    tmp_path: Path, data: Any, key: str, problem: str
) -> None:
    path = tenants_file(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_settings({}, tenants_file=path)
    assert str(info.value) == f"{key} ({path}): {problem}"


def test_tenant_file_that_is_not_json(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants.json", '{"tenant_id": ')
    with pytest.raises(ConfigError, match=r"tenants \(.*tenants.json\): not valid JSON"):
        load_tenants(path, Settings())


def test_strategy_and_budget_settings() -> None:
    s = load_settings({"N8N_BACKOFF_STRATEGY": "full", "N8N_RETRY_BUDGET_ENABLED": "true"})
    assert s.retry_policy.strategy is Strategy.FULL
    assert s.budget_policy is not None
    assert load_settings({}).budget_policy is None


def test_seed_is_still_accepted_as_the_additive_strategy() -> None:
    settings = load_settings({"N8N_BACKOFF_STRATEGY": "seed"})
    assert settings.n8n_backoff_strategy is Strategy.ADDITIVE


def test_the_test_tooling_variables_are_not_settings() -> None:
    """CI sets these beside the service's own variables; they share the prefix only."""
    env = {"RELIABILITY_REQUIRE_BROWSER": "1", "RELIABILITY_TEST_DATABASE_URL": "postgresql://x"}
    assert load_settings(env) == load_settings({})
    assert load_settings({"RELIABILITY_REQUIRE_BROWSR": "1"}) == load_settings({})
    with pytest.raises(ConfigError, match=r"RELIABILITY_REQUIRE_BROWSR .*unknown setting"):
        load_settings({"RELIABILITY_REQUIRE_BROWSR": "1"}, strict_environ=True)
