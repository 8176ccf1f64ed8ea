"""The abuse suite: the real `reliability-harness serve` on PostgreSQL, thrown the hostile cases.

One server for the module, started as a user starts it: a tenants file, secrets in the
environment (the cron secret holds a `;`), n8n's own variables beside ours, and a file-descriptor
limit of 256 (`ulimit -n 256`). Every case asserts its status and code, that a refused request
stored nothing, and at the end that no secret reached the captured log.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from service_support import event_body, stripe_header

from harness.live.stack import schema_url
from harness.testing.postgres import PgDatabase
from reliability.signature import compute_signature

pytestmark = pytest.mark.postgres

CRON = "horse;battery-staple"
ADMIN = "admin-token-abuse-7"
WHSEC = "whsec_abuse_current"
API_KEY = "n8n-api-key-abuse"
FD_LIMIT = 256
SLOW_CLIENTS = 300
SECRETS = (CRON, ADMIN, WHSEC, API_KEY, "battery-staple")


@dataclass
class Served:
    base: str
    port: int
    log: Path
    db: PgDatabase

    def log_lines(self) -> list[dict[str, object]]:
        text = self.log.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def count(self, table: str) -> int:
        with self.db.connect() as conn:
            row = conn.execute(f"SELECT count(*) FROM {self.db.schema}.{table}").fetchone()
        assert row is not None
        return int(row[0])

    def wait_for_log(self, predicate: object, seconds: float = 15) -> dict[str, object]:
        assert callable(predicate)
        deadline = time.monotonic() + seconds
        while True:  # the log is written by another process: poll it, bounded
            found = [line for line in self.log_lines() if predicate(line)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, "log line never came"
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture(scope="module")
def served(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from harness.pgschema import create_schema, drop_schema

    tmp = tmp_path_factory.mktemp("abuse")
    tenants = tmp / "tenants.json"
    tenants.write_text(json.dumps([{"tenant_id": "acme", "stripe_webhook_secrets": [WHSEC]}]))
    schema = create_schema(pg_url)
    db = PgDatabase(pg_url, schema)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "RELIABILITY_"))}
    env.update(
        CRON_SECRET=CRON,
        RELIABILITY_ADMIN_TOKEN=ADMIN,
        N8N_API_KEY=API_KEY,
        N8N_WEBHOOK_URL="http://127.0.0.1:9/webhook",
        RELIABILITY_HEADER_TIMEOUT_MS="1500",
        RELIABILITY_BODY_TIMEOUT_MS="1500",
        N8N_ENCRYPTION_KEY="n8n-owns-this",
        N8N_HOST="n8n.example",
        RELIABILITY_TEST_DATABASE_URL=pg_url,
        N8N_MAX_RETRYS="4",
    )
    log = tmp / "serve.log"
    argv = [
        sys.executable,
        "-m",
        "harness",
        "serve",
        "--port",
        str(port),
        "--tenants",
        str(tenants),
    ]
    argv += ["--database-url", schema_url(pg_url, schema)]
    with log.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            argv, cwd=tmp, env=env, stderr=sink, stdout=sink, preexec_fn=_low_fd_limit
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # poll until it answers (bounded)
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        yield Served(base, port, log, db)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        text = log.read_text(encoding="utf-8")
        drop_schema(pg_url, schema)
    for secret in SECRETS:
        assert secret not in text, f"a secret reached the log: {secret[:4]}..."
        assert quote(secret, safe="") not in text
    assert "Traceback" not in text


def test_foreign_variables_warn_once_and_do_not_stop_the_service(served: Served) -> None:
    text = served.log.read_text(encoding="utf-8")
    warnings = [line for line in text.splitlines() if "ignoring variables" in line]
    assert warnings == [
        "reliability-harness serve: warning: ignoring variables that are not settings: "
        "N8N_ENCRYPTION_KEY, N8N_HOST, N8N_MAX_RETRYS (did you mean N8N_MAX_RETRIES?)"
    ]


@pytest.mark.parametrize(
    "query",
    [
        f"secret={quote(CRON, safe=';')}",
        f"secret={quote(CRON, safe='')}",
        f"x=secret&s%65cret={quote(CRON, safe=';')}",
    ],
)
def test_the_cron_secret_never_reaches_the_access_log(served: Served, query: str) -> None:
    answer = httpx.get(f"{served.base}/api/weekly-recap?{query}", timeout=5)
    assert answer.status_code == 200  # it authenticates...
    logged = query.split("=", 1)[0]  # the first key, as the access line shows it
    line = served.wait_for_log(
        lambda r: (
            r.get("logger") == "uvicorn.access"
            and str(r.get("path", "")).startswith(f"/api/weekly-recap?{logged}")
        )
    )
    # ...and the access line shows none of it (the teardown checks the whole log as well).
    assert "[REDACTED]" in str(line["path"])
    assert "battery" not in str(line["path"])
    assert "staple" not in str(line["path"])


def test_mid_body_disconnect_is_one_info_line(served: Served) -> None:
    before = served.count("stripe_event_ledger")
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        head = (
            "POST /api/stripe/webhook/acme HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"id": "evt_cut')
    line = served.wait_for_log(lambda r: r.get("status") == 499)
    assert line["level"] == "info"
    lines = served.log_lines()
    assert not [r for r in lines if r.get("level") == "error"]
    assert sum(1 for r in lines if r.get("status") == 499) == 1
    assert served.count("stripe_event_ledger") == before


def _signed_post(served: Served, tenant: str, body: bytes, header: str) -> httpx.Response:
    return httpx.post(
        f"{served.base}/api/stripe/webhook/{tenant}",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        timeout=5,
    )


@pytest.mark.parametrize("type_", ["no.such.type", "invoice.paid"])
def test_lone_surrogate_ids_are_invalid_json_and_store_nothing(served: Served, type_: str) -> None:
    body = ('{"id":"evt_\\ud800","type":"' + type_ + '","data":{"object":{}}}').encode()
    t = int(time.time())
    answer = _signed_post(served, "acme", body, f"t={t},v1={compute_signature(WHSEC, t, body)}")
    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_JSON")
    assert served.count("stripe_event_ledger") == 0
    assert served.count("outbox") == 0


def test_unknown_tenant_is_answered_like_a_bad_signature(served: Served) -> None:
    body = event_body("evt_enum")
    wrong = stripe_header(body, "whsec_guess")
    known, unknown = (
        _signed_post(served, "acme", body, wrong),
        _signed_post(served, "nobody", body, wrong),
    )
    assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
    assert known.json()["code"] == "BAD_SIGNATURE"
    metrics = httpx.get(f"{served.base}/metrics", timeout=5).text
    assert 'code="UNKNOWN_TENANT"' in metrics  # the real reason, for the operator
    assert served.count("stripe_event_ledger") == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "W" * 600,
        "%%%",
        "WzEsMl0",  # [1,2]
        "eyIyMDI0LTAxLTAxVDAwOjAwOjAwKzAwOjAwIjoxLCJ4IjoyfQ",  # a dict with two keys
        __import__("base64").urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
    ],
)
def test_malformed_cursors_are_400(served: Served, cursor: str) -> None:
    answer = httpx.get(
        f"{served.base}/api/admin/dlq",
        params={"cursor": cursor},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_CURSOR")


def test_a_trailing_slash_is_a_json_404_without_a_redirect(served: Served) -> None:
    answer = httpx.post(
        f"{served.base}/api/stripe/webhook/acme/", headers={"Host": "evil.example"}, timeout=5
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND")
    assert "location" not in answer.headers


def _raw(served: Served, data: bytes, wait: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(wait)
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_headers_that_never_finish_get_408(served: Served) -> None:
    started = time.monotonic()
    answer = _raw(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"REQUEST_TIMEOUT"' in answer
    assert time.monotonic() - started < 8


def test_a_body_that_never_finishes_gets_408(served: Served) -> None:
    head = b"POST /api/stripe/webhook/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    answer = _raw(served, head + b'{"id"')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"REQUEST_TIMEOUT"' in answer


def test_slow_clients_beyond_the_fd_limit_leave_healthz_answering(served: Served) -> None:
    """More slow connections than the server's file-descriptor limit (300 vs `ulimit -n 256`):
    at least 90% of /healthz probes still succeed (the full-size run is benchmarks/slow_clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW_CLIENTS + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    slow: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", served.port))
            slow.append(sock)
        for sock in slow:
            # Not accepted yet or already evicted: it stays an open slow client either way.
            with contextlib.suppress(OSError):
                sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the end
        ok = 0
        probes = 20
        for _ in range(probes):
            with contextlib.suppress(httpx.TransportError):
                ok += httpx.get(f"{served.base}/healthz", timeout=3).status_code == 200
        assert ok >= 0.9 * probes, f"{ok}/{probes} probes succeeded"
    finally:
        for sock in slow:
            sock.close()
