"""Locust users for the reliability service: cron, Stripe intake, DLQ admin.

A request fails when its answer differs from the contract, not only on 5xx (`catch_response`):

- `CronUser`: `GET /api/weekly-recap` with the right secret (query or Bearer, as the seed and
  the usual cron convention send it) must answer 200 `{"ok":true,"message":"cron reachable"}`
  byte for byte; a share with a wrong secret must answer 403 `{"ok":false,"code":"FORBIDDEN"}`.
- `StripeUser`: events built and signed by `harness.fakes.stripe` for the configured tenants must
  answer 200 `{"ok":true,"duplicate":false,...}`; a share of re-sent events must answer 200
  `{"ok":true,"duplicate":true}`, a share with a tampered signature 400 `BAD_SIGNATURE`.
- `DlqAdminUser`: lists the DLQ (200, `entries`) and retries one entry (200 with `outbox_id`, or
  404 `NOT_FOUND` when another retry won).

Configured by environment variables, which `reliability-harness load` sets (see docs/load.md):
`LOADTEST_CRON_SECRET`, `LOADTEST_ADMIN_TOKEN`, `LOADTEST_TENANTS` (JSON tenant -> signing
secret), `LOADTEST_EVENT_TYPES` (JSON list), `LOADTEST_SHARES` (JSON: wrong_secret, duplicate,
bad_signature), `LOADTEST_SEED`, `LOADTEST_WAIT` (`min-max` seconds), `LOADTEST_ACCEPTED_DIR`
(where each process writes the events the service accepted, for the invariant checks) and
`LOADTEST_PROCESS` (a name unique per locust process, part of every seed).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import zlib
from collections import deque
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, constant, events, task

from harness.fakes.stripe import EVENT_TYPES, FakeStripe
from harness.live.load import DEFAULT_SHARES

_REACHABLE = b'{"ok":true,"message":"cron reachable"}'
_FORBIDDEN = b'{"ok":false,"code":"FORBIDDEN"}'
_DUPLICATE = {"ok": True, "duplicate": True}


class ConfigurationError(RuntimeError):
    """A LOADTEST_* variable is missing or malformed; the message names it."""


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigurationError(
            f"{name} is not set: run through `reliability-harness load`, or set it (docs/load.md)"
        )
    return value


def _json_env(name: str, default: str | None = None) -> Any:
    raw = _env(name, default)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}: not valid JSON: {exc}") from None


def _wait() -> Any:
    raw = _env("LOADTEST_WAIT", "0.05-0.2")
    low, _, high = raw.partition("-")
    try:
        lo, hi = float(low), float(high or low)
    except ValueError:
        raise ConfigurationError(f"LOADTEST_WAIT: expected MIN-MAX seconds, got {raw!r}") from None
    return constant(lo) if lo == hi else between(lo, hi)


_PROCESS = os.environ.get("LOADTEST_PROCESS", "local")
_SEED = int(_env("LOADTEST_SEED", "0"))
_SHARES: dict[str, float] = {**DEFAULT_SHARES, **_json_env("LOADTEST_SHARES", "{}")}
_WAIT = _wait()
_USER_NUMBERS = itertools.count()
_ACCEPTED: list[dict[str, str]] = []


def _rng(kind: str) -> random.Random:
    """A generator per user, seeded from the run seed, the process and the user's number."""
    key = f"{_SEED}:{_PROCESS}:{kind}:{next(_USER_NUMBERS)}"
    return random.Random(zlib.crc32(key.encode()))


@events.test_stop.add_listener
def _write_accepted(**_kwargs: Any) -> None:
    """Each process writes the events it saw accepted; the runner checks nothing was lost."""
    directory = os.environ.get("LOADTEST_ACCEPTED_DIR")
    if not directory:
        return
    path = Path(directory) / f"accepted-{_PROCESS}-{os.getpid()}.jsonl"
    lines = "".join(json.dumps(item, sort_keys=True) + "\n" for item in _ACCEPTED)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(lines, encoding="utf-8")
    tmp.replace(path)


class CronUser(FastHttpUser):
    """The external scheduler's health check: light, no database."""

    weight = 1
    wait_time = _WAIT
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.secret = _env("LOADTEST_CRON_SECRET")
        self.rng = _rng("cron")

    @task
    def weekly_recap(self) -> None:
        wrong = self.rng.random() < _SHARES["wrong_secret"]
        secret = self.secret + "x" if wrong else self.secret
        bearer = self.rng.random() < 0.5
        headers = {"Authorization": f"Bearer {secret}"} if bearer else {}
        path = "/api/weekly-recap" if bearer else f"/api/weekly-recap?secret={secret}"
        name = "cron forbidden" if wrong else "cron ok"
        expected = (403, _FORBIDDEN) if wrong else (200, _REACHABLE)
        with self.client.get(path, headers=headers, name=name, catch_response=True) as resp:
            if (resp.status_code, resp.content) == expected:
                resp.success()
            else:
                resp.failure(f"expected {expected[0]} {expected[1]!r}, got {_said(resp)}")


class StripeUser(FastHttpUser):
    """Stripe delivering signed events to one tenant endpoint each time, with faults."""

    weight = 1
    wait_time = _WAIT
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        tenants: dict[str, str] = _json_env("LOADTEST_TENANTS")
        if not tenants:
            raise ConfigurationError("LOADTEST_TENANTS: no tenants")
        self.tenants = sorted(tenants)
        types = _json_env("LOADTEST_EVENT_TYPES", json.dumps(list(EVENT_TYPES)))
        self.types = [t for t in types if t in EVENT_TYPES] or list(EVENT_TYPES)
        self.rng = _rng("stripe")
        self.stripe = FakeStripe(seed=self.rng.getrandbits(64), secrets=dict(tenants))
        self.sent: deque[tuple[str, dict[str, Any]]] = deque(maxlen=200)

    @task
    def deliver(self) -> None:
        roll = self.rng.random()
        if self.sent and roll < _SHARES["duplicate"]:
            tenant, event = self.rng.choice(self.sent)
            # Stripe re-signs every retry with a fresh timestamp.
            self._post(tenant, event, self.stripe.signed(event, tenant=tenant), "duplicate")
            return
        tenant = self.rng.choice(self.tenants)
        event = self.stripe.event(self.rng.choice(self.types), tenant=tenant)
        if roll < _SHARES["duplicate"] + _SHARES["bad_signature"]:
            bad = self.stripe.bad_signature(event, tenant=tenant, kind="tampered")
            self._post(tenant, event, bad, "bad")
            return
        self._post(tenant, event, self.stripe.signed(event, tenant=tenant), "new")

    def _post(self, tenant: str, event: dict[str, Any], request: Any, kind: str) -> None:
        name = {"new": "stripe new", "duplicate": "stripe duplicate", "bad": "stripe bad signature"}
        with self.client.post(
            f"/api/stripe/webhook/{tenant}",
            data=request.body,
            headers=dict(request.headers),
            name=name[kind],
            catch_response=True,
        ) as resp:
            body = _json(resp)
            if kind == "bad":
                ok = resp.status_code == 400 and body.get("code") == "BAD_SIGNATURE"
                expected = "400 BAD_SIGNATURE"
            elif kind == "duplicate":
                ok = resp.status_code == 200 and body == _DUPLICATE
                expected = '200 {"ok":true,"duplicate":true}'
            else:
                ok = (
                    resp.status_code == 200
                    and body.get("ok") is True
                    and body.get("duplicate") is False
                )
                expected = '200 {"ok":true,"duplicate":false,...}'
            if ok and kind != "bad":
                _ACCEPTED.append(
                    {"tenant_id": tenant, "event_id": event["id"], "event_type": event["type"]}
                )
                if kind == "new":
                    self.sent.append((tenant, event))
            if ok:
                resp.success()
            else:
                resp.failure(f"expected {expected}, got {_said(resp)}")


class DlqAdminUser(FastHttpUser):
    """An operator watching the DLQ and retrying entries by hand."""

    fixed_count = 1
    wait_time = between(0.5, 1.0)
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {_env('LOADTEST_ADMIN_TOKEN')}"}
        self.rng = _rng("admin")

    @task
    def list_and_retry(self) -> None:
        entries: list[dict[str, Any]] = []
        with self.client.get(
            "/api/admin/dlq?limit=20", headers=self.headers, name="dlq list", catch_response=True
        ) as resp:
            body = _json(resp)
            if resp.status_code == 200 and body.get("ok") is True and "entries" in body:
                entries = list(body["entries"])
                resp.success()
            else:
                resp.failure(f"expected 200 with entries, got {_said(resp)}")
        if not entries:
            return
        entry_id = self.rng.choice(entries)["id"]
        with self.client.post(
            f"/api/admin/dlq/{entry_id}/retry",
            headers=self.headers,
            name="dlq retry",
            catch_response=True,
        ) as resp:
            body = _json(resp)
            retried = resp.status_code == 200 and body.get("ok") is True and "outbox_id" in body
            gone = resp.status_code == 404 and body.get("code") == "NOT_FOUND"
            if retried or gone:
                resp.success()
            else:
                resp.failure(f"expected 200 with outbox_id or 404 NOT_FOUND, got {_said(resp)}")


def _json(resp: Any) -> dict[str, Any]:
    try:
        value = json.loads(resp.content or b"")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _said(resp: Any) -> str:
    content = resp.content or b""
    return f"{resp.status_code} {content[:200]!r}"
