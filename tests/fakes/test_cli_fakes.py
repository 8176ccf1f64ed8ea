"""The command line: `fake-n8n` served from a real process, `fake-stripe send` at a real server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe
import uvicorn

from harness.cli import main

SECRET = "whsec_cli_secret"


@pytest.fixture
def fake_n8n_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    faults = tmp_path / "faults.yaml"
    faults.write_text("rules:\n  - path: weekly-recap\n    fail_first: {count: 1, fault: 502}\n")
    cmd = [
        sys.executable, "-m", "harness", "fake-n8n", "--port", "0", "--faults", str(faults),
        "--header-auth", "Reliability webhook key=X-Other:sekrit",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the announcement, once the port is bound
        assert line.startswith("fake n8n on http://127.0.0.1:"), line
        yield line.split()[3], faults
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_fake_n8n_command_serves_the_samples_with_faults(
    fake_n8n_process: tuple[str, Path],
) -> None:
    url, _ = fake_n8n_process
    key = {"X-N8N-Webhook-Key": "local-test-webhook-key"}
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        first = client.post("/webhook/weekly-recap", headers=key, json={})
        second = client.post("/webhook/weekly-recap", headers=key, json={})
        journal = client.get("/__journal").json()
    assert (first.status_code, second.status_code) == (502, 200)
    assert [e["fault"] for e in journal["entries"]] == ["status:502", None]


def _serve(*args: str) -> Iterator[str]:
    cmd = [sys.executable, "-m", "harness", "fake-n8n", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("fake n8n on http://127.0.0.1:"), line
        yield line.split()[3]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize(
    ("extra", "sample_key_answer"),
    [
        ((), 200),  # n8n/workflows/credentials.json comes with the workflows
        (("--header-auth", "Reliability webhook key=X-N8N-Webhook-Key:other"), 403),
    ],
)
def test_fake_n8n_workflows_dir_brings_its_credentials(
    extra: tuple[str, ...], sample_key_answer: int
) -> None:
    """The README's `fake-n8n --workflows n8n/workflows` answers the sample key (it used to
    answer 500 "No authentication data defined on node!"); --header-auth replaces the file."""
    for url in _serve("--workflows", "n8n/workflows", *extra):
        key = {"X-N8N-Webhook-Key": "local-test-webhook-key"}
        answer = httpx.post(f"{url}/webhook/weekly-recap", headers=key, json={}, timeout=5)
        assert answer.status_code == sample_key_answer, answer.text


def test_fake_n8n_command_refuses_a_bad_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{latency: {fixed: -1}}]")
    assert main(["fake-n8n", "--port", "0", "--faults", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: rules[0].latency.fixed: negative value -1" in err


class _Endpoint:
    """A Stripe webhook endpoint on a real uvicorn server, verifying with the package."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.accept_all = False

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        sig = dict(scope["headers"]).get(b"stripe-signature", b"").decode() or None
        try:
            event = stripe.Webhook.construct_event(body, sig, SECRET)  # type: ignore[arg-type]
            status = 200
            self.seen.add(event.id)
        except (stripe.SignatureVerificationError, ValueError):
            status = 200 if self.accept_all else 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def endpoint() -> Iterator[tuple[str, _Endpoint]]:
    app = _Endpoint()
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    ready = threading.Event()
    original = server.startup

    async def startup(sockets=None) -> None:  # type: ignore[no-untyped-def]
        await original(sockets)
        ready.set()

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert ready.wait(10)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/stripe", app
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(
    ("scenario", "codes", "events"),
    [
        ("delivery", [200, 200], 2),
        ("duplicates", [200, 200, 200, 200], 2),
        ("bad-signature", [400, 400], 0),
        ("replay", [200, 400, 200, 400], 2),
    ],
)
def test_fake_stripe_send(
    endpoint: tuple[str, _Endpoint],
    capsys: pytest.CaptureFixture[str],
    scenario: str,
    codes: list[int],
    events: int,
) -> None:
    url, app = endpoint
    argv = ["fake-stripe", "send", "--to", url, "--secret", SECRET, "--count", "2", "--seed", "5"]
    assert main([*argv, "--scenario", scenario]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["status"] for line in lines] == codes
    assert f"{len(codes)} requests" in err
    assert len(app.seen) == events


def test_fake_stripe_send_exits_1_when_a_bad_request_is_accepted(
    endpoint: tuple[str, _Endpoint], capsys: pytest.CaptureFixture[str]
) -> None:
    url, app = endpoint
    app.accept_all = True  # an endpoint that skips verification
    argv = ["fake-stripe", "send", "--to", url, "--secret", SECRET, "--scenario", "wrong-secret"]
    assert main(argv) == 1
    assert "1 accepted that should have been rejected" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["file", "environment"])
def test_fake_stripe_send_takes_the_secret_off_the_command_line(
    endpoint: tuple[str, _Endpoint],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    source: str,
) -> None:
    url, _app = endpoint
    argv = ["fake-stripe", "send", "--to", url, "--count", "1", "--seed", "5"]
    if source == "file":
        secret_file = tmp_path / "whsec.txt"
        secret_file.write_text(SECRET + "\n", encoding="utf-8")
        argv += ["--secret-file", str(secret_file)]
        monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["status"] for line in out.splitlines()] == [200]
    assert SECRET not in out + err


def test_fake_stripe_send_without_a_secret_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    assert main(["fake-stripe", "send", "--to", "http://127.0.0.1:9/x"]) == 2
    assert "--secret-file FILE or set STRIPE_WEBHOOK_SECRET" in capsys.readouterr().err
