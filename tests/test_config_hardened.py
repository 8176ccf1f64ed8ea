"""Config refused up front: every case the adversarial pass found, each with its key named.

Each of these was accepted at load time and failed later (an undeliverable row, a traceback);
now `load_settings` refuses it with `KEY (source): problem` and `serve` exits 2 without a
traceback (the end-to-end cases at the bottom run the real command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reliability.config import (
    ConfigError,
    foreign_variables,
    foreign_warning,
    load_settings,
    parse_dotenv,
)


def _refused(env: dict[str, str], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(env, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("N8N_WEBHOOK_URL", "not a url", "http:// or https:// URL"),
        ("N8N_WEBHOOK_URL", "ftp://files.example/webhook", "http:// or https:// URL"),
        ("N8N_WEBHOOK_URL", "http://[::1/webhook", "not a valid URL"),
        ("N8N_WEBHOOK_URL", "http:///webhook", "has no host"),
        ("N8N_WEBHOOK_URL", "http://h:99999/webhook", "out of range"),
        ("N8N_API_KEY_HEADER", "X-Api:Key", "RFC 9110 token"),
        ("N8N_API_KEY_HEADER", "X Api Key", "RFC 9110 token"),
        ("N8N_API_KEY", "ключ-Ω", "printable ASCII"),
        ("N8N_API_KEY", "line\nbreak", "control characters"),
        ("RELIABILITY_ADMIN_TOKEN", "tökén", "printable ASCII"),
        ("N8N_DLQ_TTL_HOURS", "1e8", "must lie in [0.01, 8784] hours, got 100000000"),
        ("N8N_BASE_DELAY_MS", "1e15", "must lie in [1, 3600000] ms"),
        ("N8N_MAX_DELAY_MS", "1e15", "must lie in [1, 86400000] ms"),
        ("N8N_CIRCUIT_BREAKER_WINDOW_MS", "1e15", "must lie in [1, 86400000] ms"),
        ("RELIABILITY_BODY_LIMIT_BYTES", str(10**15), "must lie in [1, 67108864] bytes"),
        ("N8N_ROUTES", '{"a": ["x"], "a": ["y"]}', "appears twice"),
        ("N8N_ROUTES", '{"a": ["../admin"]}', "URL paths"),
        ("RELIABILITY_DATABASE_URL", "mysql://x", "must start with"),
        ("CRON_SECRET", "bad\udcffbyte", "not valid UTF-8"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key: str, value: str, problem: str) -> None:
    err = _refused({key: value})
    assert (err.key, err.source) == (key, "environment")
    assert problem in err.problem


@pytest.mark.parametrize(
    ("tenant", "key", "problem"),
    [
        ({"tenant_id": "café"}, "tenants[0].tenant_id", "must match ^[A-Za-z0-9]"),
        ({"tenant_id": "a/b"}, "tenants[0].tenant_id", "must match"),
        ({"tenant_id": " acme "}, "tenants[0].tenant_id", "must match"),
        ({"tenant_id": "x" * 65}, "tenants[0].tenant_id", "must match"),
        ({"tenant_id": "a", "dlq_ttl_hours": 1e8}, "tenants[0].dlq_ttl_hours", "must lie in"),
        (
            {"tenant_id": "a", "retry_policy": {"base_delay_ms": 10**15}},
            "tenants[0].retry_policy.base_delay_ms",
            "must lie in",
        ),
        (
            {"tenant_id": "a", "stripe_webhook_secrets": ["whsec \u00e9"]},
            "tenants[0].stripe_webhook_secrets",
            "printable ASCII",
        ),
    ],
)
def test_bad_tenants_are_refused(tmp_path: Path, tenant: Any, key: str, problem: str) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps([tenant]), encoding="utf-8")
    err = _refused({}, tenants_file=path)
    assert (err.key, err.source) == (key, str(path))
    assert problem in err.problem


def test_duplicate_key_inside_one_tenant_object(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text('[{"tenant_id": "a", "concurrency_limit": 1, "concurrency_limit": 2}]')
    err = _refused({}, tenants_file=path)
    assert (err.key, err.source) == ("tenants", str(path))
    assert "'concurrency_limit' appears twice" in err.problem


def test_tenants_nested_100000_deep(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    err = _refused({}, tenants_file=path)
    assert err.problem == "nested 100000 deep, more than 8"


@pytest.mark.parametrize("name", ["tenants.json", ".env"])
def test_files_that_are_not_utf8(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"CRON_SECRET=caf\xe9\n" if name == ".env" else b'[{"tenant_id": "caf\xe9"}]')
    kwargs: dict[str, Any] = {"dotenv": path} if name == ".env" else {"tenants_file": path}
    err = _refused({}, **kwargs)
    assert err.source == str(path)
    assert "not UTF-8 text (byte" in err.problem


def test_duplicate_key_in_dotenv_names_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        parse_dotenv("N8N_MAX_RETRIES=3\n# c\nN8N_MAX_RETRIES=5\n", source="app.env")
    assert str(info.value) == "N8N_MAX_RETRIES (app.env): set twice (lines 1 and 3)"


def test_dotenv_errors_never_echo_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_dotenv("CRON_SECRET horse-battery-staple\n", source=".env")
    assert str(info.value) == "line 1 (.env): expected NAME=value"
    with pytest.raises(ConfigError) as info:
        parse_dotenv("CRON_SECRET='horse' battery-staple\n", source=".env")
    assert "battery" not in str(info.value)


def test_unparsable_values_are_echoed_only_under_harmless_keys() -> None:
    err = _refused({"N8N_RETRY_BUDGET_ENABLED": "maybe"})
    assert err.problem == "must be true or false, got 'maybe'"


# -- foreign variables --------------------------------------------------------------------------


def test_foreign_variables_are_ignored_with_one_warning_line() -> None:
    env = {
        "N8N_ENCRYPTION_KEY": "k",
        "N8N_HOST": "n8n.example",
        "RELIABILITY_TEST_DATABASE_URL": "postgresql://x",
        "N8N_MAX_RETRYS": "7",
        "N8N_MAX_RETRIES": "4",
        "PATH": "/bin",
    }
    settings = load_settings(env)
    assert settings.n8n_max_retries == 4
    names = foreign_variables(env)
    assert names == ("N8N_ENCRYPTION_KEY", "N8N_HOST", "N8N_MAX_RETRYS")
    warning = foreign_warning(names)
    assert warning == (
        "ignoring variables that are not settings: N8N_ENCRYPTION_KEY, N8N_HOST, "
        "N8N_MAX_RETRYS (did you mean N8N_MAX_RETRIES?)"
    )
    assert foreign_warning(()) is None


def test_unknown_keys_in_an_explicit_dotenv_stay_errors(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("N8N_MAX_RETRYS=3\n", encoding="utf-8")
    err = _refused({}, dotenv=path)
    assert str(err) == f"N8N_MAX_RETRYS ({path}): unknown setting (did you mean N8N_MAX_RETRIES?)"
    assert load_settings({}, dotenv=path, strict_dotenv=False).n8n_max_retries == 3


# -- end to end: the command exits 2, names the key, no traceback, no secret --------------------


def _serve(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "RELIABILITY_"))}
    return subprocess.run(
        [sys.executable, "-m", "harness", "serve", "--port", "0", *args],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "files", "key"),
    [
        ({"N8N_WEBHOOK_URL": "not a url"}, {}, "N8N_WEBHOOK_URL (environment)"),
        ({"N8N_API_KEY": "ключ"}, {}, "N8N_API_KEY (environment)"),
        ({}, {"tenants.json": b"[" * 100_000 + b"]" * 100_000}, "tenants (tenants.json)"),
        ({}, {"tenants.json": b'[{"tenant_id": "caf\xe9"}]'}, "tenants (tenants.json)"),
        ({}, {"app.env": b"CRON_SECRET=x\nCRON_SECRET=y\n"}, "CRON_SECRET (app.env): set twice"),
        ({}, {"app.env": b"CRON_SECRET s3cr3t-horse\n"}, "line 1 (app.env): expected NAME=value"),
    ],
)
def test_serve_exits_2_naming_the_key(
    tmp_path: Path, env: dict[str, str], files: dict[str, bytes], key: str
) -> None:
    args: list[str] = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        args += ["--tenants" if name.endswith(".json") else "--env-file", name]
    done = _serve(tmp_path, {**env, "RELIABILITY_DATABASE_URL": "sqlite:///x.db"}, *args)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cr3t-horse" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
