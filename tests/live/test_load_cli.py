"""`reliability-harness load` / `crash` refuse bad input before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def assert_nothing_started(err: str, out: Path) -> None:
    assert "started " not in err
    assert not (out / "logs").exists()
    assert not (out / "run").exists()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_unknown_threshold_key_names_key_and_file(
    tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("p95_ms: 100\nlatency_p95: 3\n", encoding="utf-8")
    code, err = run(["load", "--thresholds", str(thresholds), "--out", str(out)], capsys)
    assert code == 2
    assert f"{thresholds}: latency_p95: unknown threshold key" in err
    assert_nothing_started(err, out)


@pytest.mark.parametrize("duration", ["sixty", "10q", "0s", "-1"])
def test_unparsable_duration(duration: str, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["load", "--duration", duration, "--out", str(out)], capsys)
    assert code == 2
    assert "--duration:" in err
    assert_nothing_started(err, out)


@pytest.mark.parametrize("flag", ["--service-port", "--n8n-port", "--master-port"])
def test_port_in_use(flag: str, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, err = run(["load", flag, str(port), "--out", str(out)], capsys)
    assert code == 2
    assert f"{flag}: port {port} on 127.0.0.1 is in use" in err
    assert_nothing_started(err, out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "0"], "--users: must be at least 1"),
        (["--spawn-rate", "0"], "--spawn-rate: must be a positive number"),
        (["--workers", "-1"], "--workers: must be in 0..64"),
        (["--user-classes", "cron,robots"], "--user-classes: unknown user class 'robots'"),
        (["--share", "duplicate=2"], "--share: duplicate must lie in [0, 1]"),
        (["--share", "typo=0.1"], "--share: unknown share 'typo'"),
        (["--share", "duplicate"], "--share: expected NAME=VALUE"),
        (["--wait", "2-1"], "--wait: need 0 <= MIN <= MAX"),
        (["--set", "N8N_MAX_RETRIES=lots"], "N8N_MAX_RETRIES (environment): must be a whole"),
        (["--set", "N8N_TYPO=1"], "N8N_TYPO (environment): unknown setting"),
        (["--drain-timeout", "soon"], "--drain-timeout: cannot parse"),
        (["--faults", "/nonexistent/faults.yaml"], "--faults: no such file"),
    ],
)
def test_bad_arguments(
    args: list[str], message: str, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["load", *args, "--out", str(out)], capsys)
    assert code == 2, err
    assert message in err
    assert_nothing_started(err, out)


def test_bad_fault_profile_names_the_key(
    tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("rules:\n  - path: '*'\n    status: {503: 1.5}\n", encoding="utf-8")
    code, err = run(["load", "--faults", str(faults), "--out", str(out)], capsys)
    assert code == 2
    assert str(faults) in err
    assert "status.503" in err
    assert_nothing_started(err, out)
    code, err = run(["crash", "--faults", str(faults), "--out", str(out)], capsys)
    assert code == 2
    assert "status.503" in err


def test_crash_refuses_a_bad_duration(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["crash", "--duration", "forever", "--out", str(out)], capsys)
    assert code == 2
    assert "--duration: cannot parse 'forever'" in err
