"""`reliability-harness serve`: run the reference service under uvicorn.

Config comes from the environment, a `.env` file and a tenants file, validated before anything
starts: a bad value prints the `ConfigError` (key and source) and exits with code 2. The store is
`--database-url`, else `RELIABILITY_DATABASE_URL` (environment or `.env`), else an embedded
PostgreSQL 16 started for the service (`--data-dir`, printed; the `embedded-pg` extra). It is
migrated once, then uvicorn serves the app with JSON logs that never carry a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.exits import BAD_INPUT, INTERNAL, INTERRUPTED, OK, require
from reliability.config import ConfigError, Settings, load_settings, parse_dotenv
from reliability.logs import log_fields
from reliability.store import StoreError, open_store

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["app_from_environment", "register", "run"]

_ENV_FILE_VAR = "_RELIABILITY_SERVE_ENV_FILE"
"""Hands `--env-file` to worker processes (not an `N8N_`/`RELIABILITY_` setting on purpose)."""

_URL_VAR = "RELIABILITY_DATABASE_URL"
_log = logging.getLogger("reliability.dlq")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the reference service (cron, Stripe intake, drain, DLQ admin, metrics)",
        description=__doc__,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--env-file",
        default=None,
        help="a .env file (default: ./.env when it exists); the environment wins over it",
    )
    parser.add_argument("--tenants", default=None, help="tenants JSON file")
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"the store (overrides {_URL_VAR}; when neither is set, an embedded "
        "PostgreSQL 16 is started for the service)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the embedded server's data directory, kept (default: a temporary directory, "
        "removed at exit)",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning"], help="log level"
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="turn uvicorn's access log off"
    )
    parser.set_defaults(func=run)


def _settings(env_file: str | None, tenants: str | None, database_url: str | None) -> Settings:
    settings = load_settings(os.environ, dotenv=env_file, tenants_file=tenants)
    if database_url:
        settings = replace(settings, reliability_database_url=database_url)
    return settings


def _secrets(settings: Settings) -> list[str]:
    values = [settings.cron_secret, settings.reliability_admin_token, settings.n8n_api_key]
    for tenant in settings.tenants.values():
        values.extend(tenant.stripe_webhook_secrets)
    return [v for v in values if v]


async def _migrate(url: str) -> None:
    store = open_store(url, max_size=1)
    try:
        await store.migrate()
    finally:
        await store.close()


def _dlq_alert(tenant_id: str, depth: int, threshold: int) -> None:
    """The service's DLQ alert: one WARNING line when a tenant's DLQ depth reaches
    `N8N_DLQ_ALERT_THRESHOLD` (the store calls it once per crossing, after the commit)."""
    _log.warning(
        "dlq depth reached the alert threshold",
        extra=log_fields(tenant_id=tenant_id, depth=depth, threshold=threshold),
    )


def _build(settings: Settings) -> Starlette:
    from reliability.app import create_app

    store = open_store(
        settings.reliability_database_url,
        max_size=16,
        dlq_alert=_dlq_alert,
        dlq_alert_threshold=settings.n8n_dlq_alert_threshold,
    )
    return create_app(settings, store, close_store=True)


def app_from_environment() -> Starlette:
    """The uvicorn factory of worker processes: the same config, read again from the env."""
    env_file = os.environ.get(_ENV_FILE_VAR) or None
    return _build(_settings(env_file, None, None))


def _url_configured(explicit: str | None, env_file: str | None) -> bool:
    if explicit or os.environ.get(_URL_VAR, "").strip():
        return True
    if env_file is None:
        return False
    text = Path(env_file).read_text(encoding="utf-8")
    return bool(parse_dotenv(text, source=env_file).get(_URL_VAR, "").strip())


@contextlib.contextmanager
def _store_url(settings: Settings, configured: bool, data_dir: str | None) -> Iterator[Settings]:
    """The settings with the store's URL: as configured, else an embedded server's."""
    if configured:
        yield settings
        return
    from harness.live.embedded import embedded_postgres

    announce = lambda line: print(f"reliability-harness serve: {line}", file=sys.stderr)  # noqa: E731
    where = Path(data_dir) if data_dir is not None else None
    with embedded_postgres(where, announce=announce) as pg:
        yield replace(settings, reliability_database_url=pg.url)


def run(args: argparse.Namespace) -> int:
    require("starlette")
    require("prometheus_client")
    env_file = args.env_file
    if env_file is None and Path(".env").is_file():
        env_file = ".env"
    try:
        if args.workers < 1:
            raise ConfigError(
                "--workers", "command line", f"must be at least 1, got {args.workers}"
            )
        if not 0 <= args.port <= 65535:
            raise ConfigError("--port", "command line", f"must be in 0..65535, got {args.port}")
        settings = _settings(env_file, args.tenants, args.database_url)
        configured = _url_configured(args.database_url, env_file)
        if configured and args.data_dir is not None:
            raise ConfigError("--data-dir", "command line", "is for the embedded server only")
    except ConfigError as exc:
        print(f"reliability-harness serve: config error: {exc}", file=sys.stderr)
        return BAD_INPUT
    received: list[int] = []
    with _store_url(settings, configured, args.data_dir) as settings:
        code = _serve(args, settings, env_file, received)
    if received:
        name = signal.Signals(received[0]).name
        print(f"reliability-harness serve: stopped by {name}", file=sys.stderr)
        return INTERRUPTED
    return code


def _serve(
    args: argparse.Namespace, settings: Settings, env_file: str | None, received: list[int]
) -> int:
    """Migrate, then serve until a signal; the signals that stopped uvicorn go to `received`."""
    import uvicorn

    from reliability.logs import uvicorn_log_config

    try:
        asyncio.run(_migrate(settings.reliability_database_url))
    except (StoreError, OSError) as exc:
        print(f"reliability-harness serve: store error: {exc}", file=sys.stderr)
        return INTERNAL
    if not settings.cron_secret:
        print("reliability-harness serve: warning: CRON_SECRET is not set", file=sys.stderr)
    if not settings.reliability_admin_token:
        print(
            "reliability-harness serve: warning: RELIABILITY_ADMIN_TOKEN is not set; "
            "the DLQ admin API answers 503",
            file=sys.stderr,
        )
    log_config = uvicorn_log_config(secrets=_secrets(settings), level=args.log_level)
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_config": log_config,
        "access_log": not args.no_access_log,
        "proxy_headers": False,
        "server_header": False,
    }
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the
    # handler it found: remember it (instead of dying on it), so the embedded server is
    # stopped too and the exit code says "interrupted".
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    if args.workers == 1:
        uvicorn.run(_build(settings), **common)
        return OK
    # Workers import the app by name and rebuild it from the same (validated) configuration.
    os.environ[_URL_VAR] = settings.reliability_database_url
    if args.tenants:
        os.environ["RELIABILITY_TENANTS_FILE"] = str(Path(args.tenants).resolve())
    if env_file:
        os.environ[_ENV_FILE_VAR] = str(Path(env_file).resolve())
    uvicorn.run(
        "harness.cli.serve:app_from_environment", factory=True, workers=args.workers, **common
    )
    return OK
