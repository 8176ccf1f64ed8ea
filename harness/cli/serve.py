"""`reliability-harness serve`: run the reference service under uvicorn.

Config comes from the environment, a `.env` file and a tenants file, validated before anything
starts: a bad value prints the `ConfigError` (key and source) and exits with code 2. The store
is migrated once, then uvicorn serves the app with JSON logs that never carry a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from reliability.app import create_app
from reliability.config import ConfigError, Settings, load_settings
from reliability.logs import uvicorn_log_config
from reliability.store import StoreError, open_store

__all__ = ["app_from_environment", "register", "run"]

_ENV_FILE_VAR = "_RELIABILITY_SERVE_ENV_FILE"
"""Hands `--env-file` to worker processes (not an `N8N_`/`RELIABILITY_` setting on purpose)."""

EXIT_CONFIG = 2
EXIT_STORE = 1


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the reference service (cron, Stripe intake, drain, DLQ admin, metrics)",
        description=__doc__,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--env-file",
        default=None,
        help="a .env file (default: ./.env when it exists); the environment wins over it",
    )
    parser.add_argument("--tenants", default=None, help="tenants JSON file")
    parser.add_argument("--database-url", default=None, help="overrides RELIABILITY_DATABASE_URL")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
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


def _build(settings: Settings) -> Starlette:
    store = open_store(settings.reliability_database_url, max_size=16)
    return create_app(settings, store, close_store=True)


def app_from_environment() -> Starlette:
    """The uvicorn factory of worker processes: the same config, read again from the env."""
    env_file = os.environ.get(_ENV_FILE_VAR) or None
    return _build(_settings(env_file, None, None))


def run(args: argparse.Namespace) -> int:
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
    except ConfigError as exc:
        print(f"reliability-harness serve: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(_migrate(settings.reliability_database_url))
    except (StoreError, OSError) as exc:
        print(f"reliability-harness serve: store error: {exc}", file=sys.stderr)
        return EXIT_STORE
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
    if args.workers == 1:
        uvicorn.run(_build(settings), **common)
        return 0
    # Workers import the app by name and rebuild it from the same (validated) configuration.
    os.environ["RELIABILITY_DATABASE_URL"] = settings.reliability_database_url
    if args.tenants:
        os.environ["RELIABILITY_TENANTS_FILE"] = str(Path(args.tenants).resolve())
    if env_file:
        os.environ[_ENV_FILE_VAR] = str(Path(env_file).resolve())
    uvicorn.run(
        "harness.cli.serve:app_from_environment", factory=True, workers=args.workers, **common
    )
    return 0
