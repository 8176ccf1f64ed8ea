"""`reliability-harness reconcile`: the layer's deliveries against n8n's executions.

    reliability-harness reconcile --n8n-url http://127.0.0.1:5678 --api-key-file n8n.key \\
        --database-url postgresql://reliability@db/reliability [--since 2026-12-01T00:00:00Z]

Reads the delivered outbox rows from the database and the executions from n8n's public API
(`X-N8N-API-KEY` from the file), and reports as JSON on stdout the deliveries with no execution,
the executions with no delivery and the keys with duplicate effects (`harness.live.reconcile`).
Exits 1 when any is found, 0 when none, 2 for bad input (an unreadable key file, a key n8n
refuses, a bad `--since`), 3 when n8n or the database cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from harness.cli.exits import BAD_INPUT, BROKEN, INTERNAL, OK
from harness.live.reconcile import Delivery, N8nApi, executions_for, reconcile

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="compare delivered rows with n8n's executions (n8n's public API)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--n8n-url", required=True, metavar="URL", help="n8n's base URL")
    parser.add_argument(
        "--api-key-file", required=True, metavar="FILE", help="file holding n8n's API key"
    )
    parser.add_argument("--database-url", required=True, metavar="URL", help="the layer's store")
    parser.add_argument(
        "--since", metavar="T", help="only deliveries and executions from T on (ISO 8601)"
    )
    parser.set_defaults(func=_run)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _deliveries(url: str, since: datetime | None) -> list[Delivery]:
    from reliability.store import open_store

    store = open_store(url, max_size=2)
    try:
        rows = await store.outbox_rows(include_done=True)
    finally:
        await store.close()
    return [
        Delivery(r.idempotency_key, r.tenant_id, r.workflow, r.done_at)
        for r in rows
        if r.done_at is not None and (since is None or r.done_at >= since)
    ]


def _fail(code: int, message: str) -> int:
    print(f"reliability-harness reconcile: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        since = _since(args.since)
    except ValueError:
        return _fail(BAD_INPUT, f"--since {args.since!r}: expected an ISO 8601 time")
    try:
        key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(BAD_INPUT, f"--api-key-file {args.api_key_file}: cannot read: {exc}")
    if not key:
        return _fail(BAD_INPUT, f"--api-key-file {args.api_key_file}: empty")
    api = N8nApi(args.n8n_url, key)
    try:
        executions = executions_for(api, since)
    except PermissionError as exc:
        return _fail(BAD_INPUT, f"--api-key-file {args.api_key_file}: {exc}")
    except httpx.HTTPError as exc:
        return _fail(INTERNAL, f"n8n at {args.n8n_url}: {type(exc).__name__}: {exc}")
    finally:
        api.close()
    try:
        deliveries = asyncio.run(_deliveries(args.database_url, since))
    except Exception as exc:
        return _fail(INTERNAL, f"--database-url: {type(exc).__name__}: {exc}")
    result = reconcile(deliveries, executions)
    print(json.dumps(result.to_json(), indent=2))
    print(result.summary, file=sys.stderr)
    return OK if result.ok else BROKEN
