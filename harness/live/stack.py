"""The system under test as real processes: the service and the fake n8n on loopback, on Postgres.

`Stack` is what the load and crash runners share: it makes a fresh Postgres schema, writes the
service's env and tenant files, starts `reliability-harness fake-n8n` and one or more
`reliability-harness serve` processes on ephemeral 127.0.0.1 ports, waits (bounded) until they
answer `/healthz` and `/readyz`, and stops every process it started, also on Ctrl-C and on
failure. Each child runs in a session (process group) of its own, so stopping it stops whatever
it spawned, and on Linux it is killed by the kernel if the harness itself dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import psycopg

from harness.live.errors import StackError
from harness.live.processes import (
    LOOPBACK,
    ManagedProcess,
    Supervisor,
    ensure_port_free,
    free_port,
)
from harness.pgschema import create_schema, drop_schema
from reliability.clock import Clock, SystemClock
from reliability.config import ConfigError, Settings, load_settings
from reliability.redact import redact

__all__ = [
    "DATABASE_ENV_VAR",
    "DEFAULT_DATABASE_URL",
    "Stack",
    "StackConfig",
    "TenantSpec",
    "child_env",
    "make_tenants",
    "resolve_database_url",
    "schema_url",
]

DATABASE_ENV_VAR: Final = "RELIABILITY_TEST_DATABASE_URL"
DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"

_WEBHOOK_KEY_HEADER: Final = "X-N8N-Webhook-Key"
_WEBHOOK_KEY: Final = "local-test-webhook-key"
"""The header-auth credential the sample workflows reference (`harness.fakes.n8n`)."""

_SERVICE_DEFAULTS: Final[Mapping[str, str]] = {
    # Short delays so a run of a minute sees retries, breakers and the DLQ settle.
    "N8N_MAX_RETRIES": "3",
    "N8N_BASE_DELAY_MS": "200",
    "N8N_MAX_DELAY_MS": "2000",
    "N8N_BACKOFF_STRATEGY": "full",
    "N8N_CIRCUIT_BREAKER_THRESHOLD": "20",
    "N8N_CIRCUIT_BREAKER_WINDOW_MS": "5000",
    "N8N_CIRCUIT_BREAKER_RECOVERY_MS": "2000",
    "N8N_CONNECT_TIMEOUT_MS": "1000",
    "N8N_READ_TIMEOUT_MS": "2000",
    "N8N_DEFAULT_CONCURRENCY": "5",
    "N8N_MAX_CONCURRENCY": "20",
    "N8N_DLQ_TTL_HOURS": "24",
    "N8N_DLQ_CLEANUP_INTERVAL_MS": "60000",
    "RELIABILITY_LEASE_MARGIN_MS": "5000",
}
"""Service settings of a harness run; `StackConfig.settings` overrides any of them."""

_OWNED_PREFIXES: Final = ("N8N_", "RELIABILITY_")
_OWNED_KEYS: Final = frozenset({"CRON_SECRET"})


# -- ports and database -------------------------------------------------------------------------


def resolve_database_url(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """`--database-url`, else `RELIABILITY_TEST_DATABASE_URL`, else the local default."""
    if explicit:
        return explicit
    found = (os.environ if env is None else env).get(DATABASE_ENV_VAR, "").strip()
    return found or DEFAULT_DATABASE_URL


def schema_url(url: str, schema: str) -> str:
    """`url` with libpq `options` setting `search_path` to `schema` (kept by every connection)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _schema(url: str, prefix: str) -> str:
    try:
        return create_schema(url, prefix)
    except psycopg.Error as exc:
        raise StackError(
            f"database {redact(url)}: cannot create a schema: {redact(str(exc))}"
        ) from None


# -- the stack ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantSpec:
    """One tenant of a run: its id, its Stripe signing secret, its concurrency limit."""

    tenant_id: str
    secret: str
    concurrency_limit: int


def make_tenants(count: int, seed: int, *, concurrency_limit: int = 5) -> tuple[TenantSpec, ...]:
    """`count` tenants with secrets drawn from `random.Random(seed)` (same seed, same secrets)."""
    if count < 1:
        raise StackError(f"tenants: need at least 1, got {count}")
    rng = random.Random(seed)
    return tuple(
        TenantSpec(f"tenant-{i:03d}", f"whsec_{rng.getrandbits(128):032x}", concurrency_limit)
        for i in range(count)
    )


@dataclass(frozen=True, slots=True)
class StackConfig:
    """What to start. Ports 0 mean ephemeral; `settings` override the service defaults."""

    database_url: str
    run_dir: Path
    tenants: tuple[TenantSpec, ...]
    seed: int = 0
    faults_file: Path | None = None
    service_port: int = 0
    n8n_port: int = 0
    instances: int = 1
    service_workers: int = 1
    settings: Mapping[str, str] = field(default_factory=dict)
    ready_timeout: float = 30.0
    keep_schema: bool = False
    schema_prefix: str = "load"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The harness's environment without the service's settings (the env file sets those)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_OWNED_PREFIXES) and k not in _OWNED_KEYS
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


class Stack:
    """The service (one or more instances) and the fake n8n, as real processes, on one schema.

    Use as a context manager, or call `start()` and `close()`. Everything time-related waits on
    the injected `clock`, and every wait is bounded.
    """

    def __init__(
        self,
        config: StackConfig,
        supervisor: Supervisor,
        *,
        clock: Clock | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.supervisor = supervisor
        self._clock = clock or SystemClock()
        self._log = log or (lambda _message: None)
        rng = random.Random(f"{config.seed}:stack")
        self.cron_secret = f"cron-{rng.getrandbits(96):024x}"
        self.admin_token = f"admin-{rng.getrandbits(96):024x}"
        self.schema: str | None = None
        self.db_url = ""
        self.n8n_port = 0
        self.service_ports: list[int] = []
        self._service_procs: list[ManagedProcess | None] = []
        self._n8n: ManagedProcess | None = None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0))
        self.env_file = config.run_dir / "service.env"
        self.tenants_file = config.run_dir / "tenants.json"

    # -- validation, before anything starts -----------------------------------------------------

    def service_env(self) -> dict[str, str]:
        """The service's settings for this run (secrets included; written to `service.env`)."""
        env = dict(_SERVICE_DEFAULTS)
        env.update(
            {
                "CRON_SECRET": self.cron_secret,
                "RELIABILITY_ADMIN_TOKEN": self.admin_token,
                "N8N_WEBHOOK_URL": f"http://{LOOPBACK}:{self.n8n_port or 5678}/webhook",
                "N8N_API_KEY_HEADER": _WEBHOOK_KEY_HEADER,
                "N8N_API_KEY": _WEBHOOK_KEY,
            }
        )
        env.update(self.config.settings)
        return env

    def tenants_json(self) -> list[dict[str, Any]]:
        return [
            {
                "tenant_id": t.tenant_id,
                "concurrency_limit": t.concurrency_limit,
                "stripe_webhook_secrets": [t.secret],
            }
            for t in self.config.tenants
        ]

    def validate(self) -> Settings:
        """Check settings, tenants and chosen ports the way the service will; nothing starts."""
        if self.config.instances < 1:
            raise StackError(f"instances: need at least 1, got {self.config.instances}")
        if self.config.service_port:
            ensure_port_free(self.config.service_port, what="--service-port")
            if self.config.instances > 1:
                raise StackError("--service-port: only with one service instance")
        if self.config.n8n_port:
            ensure_port_free(self.config.n8n_port, what="--n8n-port")
        for key, value in self.service_env().items():
            if "'" in value or "\n" in value:
                raise StackError(f"service settings: {key}: a value cannot hold ' or a newline")
        if self.config.service_workers < 1:
            raise StackError(
                f"--service-workers: need at least 1, got {self.config.service_workers}"
            )
        with tempfile.TemporaryDirectory(prefix="rh-check-") as tmp:
            probe = Path(tmp) / "tenants.json"
            probe.write_text(json.dumps(self.tenants_json()), encoding="utf-8")
            try:
                return load_settings(self.service_env(), tenants_file=probe, strict_environ=True)
            except ConfigError as exc:
                raise StackError(f"service settings: {exc}") from None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Schema, files, fake n8n, then the service instances; returns once all are ready."""
        self.validate()
        base_url = self.config.database_url
        self.schema = _schema(base_url, self.config.schema_prefix)
        self.db_url = schema_url(base_url, self.schema)
        self._log(f"database: schema {self.schema} on {redact(base_url)}")

        self.n8n_port = self.config.n8n_port or free_port()
        self._write_files()
        argv = _cli("fake-n8n", "--port", str(self.n8n_port), "--seed", str(self.config.seed))
        if self.config.faults_file is not None:
            argv += ["--faults", str(self.config.faults_file)]
        self._n8n = self.supervisor.start("fake-n8n", argv, env=child_env())
        await self._wait_ready(self._n8n, self.n8n_url, ("/healthz",))

        for i in range(self.config.instances):
            port = self.config.service_port if i == 0 and self.config.service_port else free_port()
            self.service_ports.append(port)
            self._service_procs.append(None)
            await self.start_service(i)

    def _write_files(self) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}='{v}'" for k, v in sorted(self.service_env().items())]
        self.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.env_file.chmod(0o600)
        self.tenants_file.write_text(json.dumps(self.tenants_json(), indent=2), encoding="utf-8")
        self.tenants_file.chmod(0o600)

    async def start_service(self, index: int) -> ManagedProcess:
        """(Re)start service instance `index` on its port and wait until it is ready."""
        argv = _cli(
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(self.service_ports[index]),
            "--env-file",
            str(self.env_file),
            "--tenants",
            str(self.tenants_file),
            "--database-url",
            self.db_url,
            "--workers",
            str(self.config.service_workers),
            "--log-level",
            "warning",
            "--no-access-log",
        )
        proc = self.supervisor.start(f"service-{index}", argv, env=child_env())
        self._service_procs[index] = proc
        await self._wait_ready(proc, self.service_url(index), ("/healthz", "/readyz"))
        return proc

    def kill_service(self, index: int) -> None:
        """SIGKILL service instance `index` (its whole process group): a crash."""
        proc = self._service_procs[index]
        if proc is None:
            raise StackError(f"service instance {index} is not running")
        self.supervisor.kill(proc)
        self.supervisor.forget(proc)
        self._service_procs[index] = None

    async def _wait_ready(
        self, proc: ManagedProcess, base: str, paths: Sequence[str], *, interval: float = 0.05
    ) -> None:
        deadline = self._clock.monotonic() + self.config.ready_timeout
        rounds = int(self.config.ready_timeout / interval) + 1
        last = "no answer yet"
        for _ in range(rounds):
            if not proc.alive():
                raise StackError(
                    f"{proc.name} exited with code {proc.popen.returncode} before it was "
                    f"ready; its output ({proc.log_path}):\n{proc.tail()}"
                )
            try:
                codes = [(await self._http.get(base + p)).status_code for p in paths]
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if all(c == 200 for c in codes):
                    self._log(f"{proc.name} ready on {base}")
                    return
                last = ", ".join(f"{p} -> {c}" for p, c in zip(paths, codes, strict=True))
            if self._clock.monotonic() >= deadline:
                break
            await self._clock.sleep(interval)
        raise StackError(
            f"{proc.name} not ready on {base} within {self.config.ready_timeout:g}s "
            f"(last: {last}); its output ({proc.log_path}):\n{proc.tail()}"
        )

    async def aclose(self) -> None:
        """Stop every process and drop the schema (unless `keep_schema`)."""
        try:
            self.supervisor.stop_all()
        finally:
            await self._http.aclose()
            if self.schema is not None and not self.config.keep_schema:
                with contextlib.suppress(psycopg.Error):
                    drop_schema(self.config.database_url, self.schema)
                self._log(f"database: dropped schema {self.schema}")

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- addresses and calls -------------------------------------------------------------------

    @property
    def n8n_url(self) -> str:
        return f"http://{LOOPBACK}:{self.n8n_port}"

    def service_url(self, index: int = 0) -> str:
        return f"http://{LOOPBACK}:{self.service_ports[index]}"

    def service_pids(self) -> list[int | None]:
        return [p.pid if p is not None else None for p in self._service_procs]

    async def reset_fake(self) -> None:
        """Empty the fake's journal and restart its fault clock (t = 0 from now)."""
        response = await self._http.post(self.n8n_url + "/__reset")
        response.raise_for_status()

    async def journal(self) -> dict[str, Any]:
        response = await self._http.get(self.n8n_url + "/__journal", timeout=60.0)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def drain(self, index: int = 0) -> dict[str, int]:
        """One `POST /api/cron/drain` on instance `index`; its counts."""
        response = await self._http.post(
            self.service_url(index) + "/api/cron/drain",
            headers={"Authorization": f"Bearer {self.cron_secret}"},
            timeout=60.0,
        )
        if response.status_code != 200:
            raise StackError(f"drain answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        counts = data if isinstance(data, dict) else {}
        return {
            k: int(v)
            for k, v in counts.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
