"""No secret in any log line: access logs of a live uvicorn server, app logs, error logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from service_support import (
    ADMIN,
    CRON,
    SECRETS,
    N8nStandIn,
    event_body,
    make_settings,
    stripe_header,
)

from harness.testing.postgres import PgDatabase
from reliability.app import create_app
from reliability.logs import REDACTED, JsonFormatter, RedactingFilter, Redactor, uvicorn_log_config

pytestmark = pytest.mark.postgres

_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "reliability")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.filters[:])
        for name in _LOGGERS
        for lg in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate, filters) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.filters[:] = filters


async def test_secrets_never_reach_a_log_line(
    pg_database: PgDatabase, live_server: Any, restore_logging: None
) -> None:
    store = pg_database.open_store(max_size=2)
    await store.migrate()
    await store.close()
    settings = make_settings()
    secrets = [CRON, ADMIN, settings.n8n_api_key, *SECRETS]
    buffer = io.StringIO()
    n8n = N8nStandIn()

    def build() -> Any:
        return create_app(
            settings, pg_database.open_store(max_size=2), transport=n8n.transport, close_store=True
        )

    server = live_server(
        build,
        log_config=uvicorn_log_config(secrets=secrets, stream=buffer),
        log_level="info",
        access_log=True,
    )
    body = event_body("evt_logs")
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get(f"/api/weekly-recap?secret={CRON}")).status_code == 200
        assert (await client.get("/api/weekly-recap?secret=caf%C3%A9&x=1")).status_code == 403
        bearer = {"authorization": f"Bearer {CRON}"}
        assert (await client.get("/api/weekly-recap", headers=bearer)).status_code == 200
        assert (await client.post(f"/api/cron/drain?batch=5&secret={CRON}")).status_code == 200
        admin = {"authorization": f"Bearer {ADMIN}"}
        assert (await client.get(f"/api/admin/dlq?token={ADMIN}", headers=admin)).status_code == 200
        response = await client.post(
            "/api/stripe/webhook/acme",
            content=body,
            headers={"stripe-signature": stripe_header(body)},
        )
        assert response.status_code == 200
        assert (await client.get(f"/nope?api_key={ADMIN}")).status_code == 404
    logging.getLogger("reliability.test").warning(
        "a careless line: %s and Authorization: Bearer %s", CRON, ADMIN
    )
    server.stop()  # flushes the access log of the last requests

    lines = buffer.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    text = buffer.getvalue()
    for secret in secrets:
        assert secret not in text
    assert "caf%C3%A9" not in text
    paths = [r["path"] for r in records if r["logger"] == "uvicorn.access"]
    assert f"/api/weekly-recap?secret={REDACTED}" in paths
    assert f"/api/weekly-recap?secret={REDACTED}&x=1" in paths
    assert f"/api/cron/drain?batch=5&secret={REDACTED}" in paths
    assert f"/nope?api_key={REDACTED}" in paths
    assert any(r.get("code") == "ACCEPTED" and r.get("event_id") == "evt_logs" for r in records)
    assert any(r["msg"].startswith("a careless line: [REDACTED]") for r in records)


def test_redactor_forms() -> None:
    redact = Redactor(["hunter2-secret"])
    assert redact("GET /x?secret=abc&b=2") == f"GET /x?secret={REDACTED}&b=2"
    assert redact("GET /x?a=1&SECRET=abc") == f"GET /x?a=1&SECRET={REDACTED}"
    assert redact("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: {REDACTED}"
    assert redact('{"authorization": "Bearer xyz"}') == '{"authorization": "' + REDACTED + '"}'
    assert redact("token was bearer abc.def") == f"token was bearer {REDACTED}"
    assert redact("x hunter2-secret y") == f"x {REDACTED} y"
    assert redact("nothing here?secretary=1") == "nothing here?secretary=1"


def test_formatter_and_filter_on_a_plain_logger() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(["s3cr3t-value"]))
    log = logging.getLogger("reliability.test.plain")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("value %s", "s3cr3t-value", extra={"fields": {"k": "s3cr3t-value", "n": 1}})
        try:
            raise RuntimeError("boom s3cr3t-value")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == f"value {REDACTED}"
    assert (first["k"], first["n"], first["level"]) == (REDACTED, 1, "warning")
    assert "s3cr3t-value" not in second["exc"]
    assert "RuntimeError" in second["exc"]


def test_a_repeated_access_line_is_scrubbed_every_time() -> None:
    """The filter remembers scrubbed access-log values: a second line with the same path must
    come out exactly as scrubbed as the first (and a new path is scrubbed on its own)."""
    redacting = RedactingFilter(["s3cr3t-cron"])
    lines = []
    for path in ("/api/cron/drain?secret=s3cr3t-cron", "/api/cron/drain?secret=s3cr3t-cron", "/x"):
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5", "POST", path, "1.1", 200),
            None,
        )
        assert redacting.filter(record)
        lines.append(record.args)
    assert lines[0] == lines[1]
    assert isinstance(lines[0], tuple)
    assert "s3cr3t-cron" not in lines[0][2]
    assert lines[2] == ("127.0.0.1:5", "POST", "/x", "1.1", 200)
