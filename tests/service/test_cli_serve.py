"""`reliability-harness serve`: refuses bad config with exit 2; serves the app for real."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from harness import cli
from reliability.signature import signature_header


@pytest.fixture
def no_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("uvicorn was started on a bad config")

    monkeypatch.setattr(uvicorn, "run", refuse)
    for key in list(os.environ):
        if key.startswith(("N8N_", "RELIABILITY_")) or key == "CRON_SECRET":
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("env", "argv", "names"),
    [
        ({"N8N_MAX_RETRIES": "three"}, [], "N8N_MAX_RETRIES (environment)"),
        ({"RELIABILITY_TYPO": "1"}, [], "RELIABILITY_TYPO"),
        ({}, ["--env-file", "/nonexistent/.env"], "/nonexistent/.env"),
        ({}, ["--tenants", "{tenants}"], "tenants[0].concurrency_limit"),
        ({}, ["--workers", "0"], "--workers"),
    ],
)
def test_bad_config_exits_2_and_starts_nothing(
    no_uvicorn: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    names: str,
) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps([{"tenant_id": "a", "concurrency_limit": 999}]))
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    argv = [a.replace("{tenants}", str(tenants)) for a in argv]
    code = cli.main(["serve", "--database-url", f"sqlite:///{tmp_path}/x.db", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert "config error" in err
    assert names in err
    assert not (tmp_path / "x.db").exists()  # nothing migrated either


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(proc: subprocess.Popen[str], base: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:  # poll until it answers (bounded)
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.1)


def serve_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "RELIABILITY_"))}
    env.pop("CRON_SECRET", None)
    return {**env, "PYTHONPATH": str(Path(cli.__file__).resolve().parents[2])}


def test_serve_without_a_database_url_runs_on_an_embedded_postgres(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--port", str(port), "--no-access-log"],
        cwd=tmp_path,
        env=serve_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    said = re.search(r"embedded PostgreSQL 16 \(pgserver\): started with data in (\S+)", err)
    assert said is not None, err
    assert not Path(said.group(1)).exists()  # stopped and removed at exit
    assert not list(tmp_path.iterdir())  # no SQLite file either


def test_serve_runs_the_app(tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / ".env").write_text("CRON_SECRET=from-dotenv-secret\nN8N_MAX_RETRIES=1\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "serve",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp_path}/serve.db",
        ],
        cwd=tmp_path,
        env=serve_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(proc, base)
        ok = httpx.get(f"{base}/api/weekly-recap?secret=from-dotenv-secret", timeout=5)
        assert (ok.status_code, ok.content) == (200, b'{"ok":true,"message":"cron reachable"}')
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130  # interrupted, after uvicorn's clean shutdown
    assert "Application shutdown complete" in err
    assert "from-dotenv-secret" not in err
    access = [json.loads(line) for line in err.splitlines() if '"uvicorn.access"' in line]
    assert any(a["path"] == "/api/weekly-recap?secret=[REDACTED]" for a in access)
    assert (tmp_path / "serve.db").exists()


def test_serve_alerts_when_a_tenants_dlq_reaches_the_threshold(tmp_path: Path) -> None:
    """N8N_DLQ_ALERT_THRESHOLD is wired: the first dead letter (threshold 1) logs one alert."""
    port, dead_port = _free_port(), _free_port()  # nothing listens on dead_port: n8n is down
    (tmp_path / "tenants.json").write_text(
        json.dumps([{"tenant_id": "acme", "stripe_webhook_secrets": ["whsec_alert"]}])
    )
    env = {
        **serve_env(),
        "CRON_SECRET": "alert-test-cron-secret",
        "RELIABILITY_ADMIN_TOKEN": "admin-token",
        "N8N_WEBHOOK_URL": f"http://127.0.0.1:{dead_port}/webhook",
        "N8N_MAX_RETRIES": "0",
        "N8N_DLQ_ALERT_THRESHOLD": "1",
    }
    argv = ["--port", str(port), "--database-url", f"sqlite:///{tmp_path}/s.db"]
    argv += ["--tenants", str(tmp_path / "tenants.json"), "--no-access-log"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", *argv],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(proc, base)
        body = json.dumps(
            {"id": "evt_alert", "type": "invoice.paid", "created": 1, "data": {"object": {}}}
        ).encode()
        header = signature_header(body, ["whsec_alert"], int(time.time()))
        sent = httpx.post(
            f"{base}/api/stripe/webhook/acme", content=body, headers={"Stripe-Signature": header}
        )
        assert sent.status_code == 200, sent.text
        admin = {"Authorization": "Bearer admin-token"}
        entries: list[Any] = []
        deadline = time.monotonic() + 30
        while not entries and time.monotonic() < deadline:  # the delivery runs after the answer
            entries = httpx.get(f"{base}/api/admin/dlq", headers=admin).json()["entries"]
        assert len(entries) == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    alerts = [json.loads(line) for line in err.splitlines() if "alert threshold" in line]
    assert len(alerts) == 1, err
    assert alerts[0]["level"] == "warning"
    assert (alerts[0]["tenant_id"], alerts[0]["depth"], alerts[0]["threshold"]) == ("acme", 1, 1)
