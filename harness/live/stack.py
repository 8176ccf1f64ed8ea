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
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from reliability.clock import Clock, SystemClock
from reliability.config import ConfigError, Settings, load_settings

__all__ = [
    "DATABASE_ENV_VAR",
    "DEFAULT_DATABASE_URL",
    "DrainSummary",
    "ManagedProcess",
    "Stack",
    "StackConfig",
    "StackError",
    "Supervisor",
    "TenantSpec",
    "child_env",
    "ensure_port_free",
    "free_port",
    "make_tenants",
    "resolve_database_url",
    "schema_url",
]

DATABASE_ENV_VAR: Final = "RELIABILITY_TEST_DATABASE_URL"
DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
LOOPBACK: Final = "127.0.0.1"

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


class StackError(RuntimeError):
    """The stack could not be set up or a process misbehaved; the message says which and why."""


# -- ports and database -------------------------------------------------------------------------


def free_port() -> int:
    """An ephemeral port on the loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, *, what: str) -> None:
    """Raise `StackError` naming `what` unless `port` can be bound on the loopback now."""
    if not 0 < port < 65536:
        raise StackError(f"{what}: port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise StackError(
                f"{what}: port {port} on {LOOPBACK} is in use ({exc.strerror}); "
                "choose another or leave it out for an ephemeral port"
            ) from None


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


def _create_schema(url: str, prefix: str) -> str:
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        raise StackError(f"database {_redact(url)}: cannot create a schema: {exc}") from None
    return schema


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# -- processes ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in the child before exec: a new session, and SIGKILL when the harness dies."""
    os.setsid()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class ManagedProcess:
    """A child process the `Supervisor` started, with its own process group and log file."""

    name: str
    argv: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        """The last lines of its output (stdout and stderr), for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts children in process groups of their own and stops every one of them.

    `stop_all()` (also `__exit__`) sends SIGTERM to each group, waits up to `grace` seconds,
    then SIGKILLs the group, newest first. `on_event(message)` is told about every start/stop.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        grace: float = 5.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._log_dir = log_dir
        self._grace = grace
        self._on_event = on_event or (lambda _message: None)
        self._procs: list[ManagedProcess] = []
        self._logs: list[TextIO] = []

    @property
    def processes(self) -> tuple[ManagedProcess, ...]:
        return tuple(self._procs)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
    ) -> ManagedProcess:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        index = sum(1 for p in self._procs if p.name == name)
        log_path = self._log_dir / (f"{name}.log" if index == 0 else f"{name}.{index}.log")
        log = log_path.open("a", encoding="utf-8")
        self._logs.append(log)
        popen = subprocess.Popen(  # noqa: S603  (argv built by us, no shell)
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )
        proc = ManagedProcess(name, tuple(argv), popen, log_path)
        self._procs.append(proc)
        self._on_event(f"started {name}: pid {proc.pid} (log {log_path})")
        return proc

    def signal_group(self, proc: ManagedProcess, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def kill(self, proc: ManagedProcess) -> None:
        """SIGKILL the process group now and reap the leader (a crash, not a shutdown)."""
        self.signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=self._grace)
        self._on_event(f"killed {proc.name}: pid {proc.pid} (SIGKILL)")

    def stop(self, proc: ManagedProcess) -> None:
        """SIGTERM the group, wait up to the grace period, then SIGKILL whatever is left."""
        if proc.alive():
            self.signal_group(proc, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=self._grace)
            except subprocess.TimeoutExpired:
                self.signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=self._grace)
        # Anything the leader left behind in its group goes too.
        self.signal_group(proc, signal.SIGKILL)
        self._on_event(f"stopped {proc.name}: pid {proc.pid} (exit {proc.popen.returncode})")

    def stop_all(self) -> None:
        while self._procs:
            proc = self._procs.pop()
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                self._on_event(f"could not stop {proc.name} (pid {proc.pid}): {exc!r}")
        for log in self._logs:
            log.close()
        self._logs.clear()

    def forget(self, proc: ManagedProcess) -> None:
        """Drop a process that has exited from the list (after `kill`)."""
        if proc in self._procs:
            self._procs.remove(proc)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


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


@dataclass(frozen=True, slots=True)
class DrainSummary:
    """What draining to completion did: calls made, totals of the drain answers, rows left."""

    calls: int
    totals: Mapping[str, int]
    pending_left: int
    elapsed: float
    completed: bool


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
                return load_settings(self.service_env(), tenants_file=probe)
            except ConfigError as exc:
                raise StackError(f"service settings: {exc}") from None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Schema, files, fake n8n, then the service instances; returns once all are ready."""
        self.validate()
        base_url = self.config.database_url
        self.schema = _create_schema(base_url, self.config.schema_prefix)
        self.db_url = schema_url(base_url, self.schema)
        self._log(f"database: schema {self.schema} on {_redact(base_url)}")

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
                    _drop_schema(self.config.database_url, self.schema)
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

    async def drain_until_idle(
        self, *, timeout: float, index: int = 0, max_calls: int = 10_000
    ) -> DrainSummary:
        """Call drain until no outbox row is pending, waiting for the next due row in between.

        Bounded by `timeout` seconds and `max_calls` calls; `completed` says whether it got
        there (rows held by a breaker snooze or a lease may outlive the bound).
        """
        started = self._clock.monotonic()
        totals: dict[str, int] = {}
        calls = 0
        pending = self.pending_count()
        while pending and calls < max_calls:
            counts = await self.drain(index)
            calls += 1
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            pending = self.pending_count()
            remaining = timeout - (self._clock.monotonic() - started)
            if not pending or remaining <= 0:
                break
            if not counts.get("claimed", 0):
                await self._clock.sleep(min(max(self.seconds_until_due(), 0.05), 1.0, remaining))
        return DrainSummary(
            calls=calls,
            totals=totals,
            pending_left=pending,
            elapsed=self._clock.monotonic() - started,
            completed=pending == 0,
        )

    # -- the database --------------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A plain autocommit connection on the run's schema (for checks, never for writes)."""
        if not self.db_url:
            raise StackError("the stack is not started")
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
            yield conn

    def pending_count(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetchone()
        return int(row[0]) if row else 0

    def dlq_depth(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT count(*) FROM n8n_dlq WHERE expires_at > now()").fetchone()
        return int(row[0]) if row else 0

    def seconds_until_due(self) -> float:
        """Seconds until the earliest pending row is due and free (0 when one is already)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at)))"
                " - now() FROM outbox WHERE done_at IS NULL"
            ).fetchone()
        if not row or row[0] is None:
            return 0.0
        wait: timedelta = row[0]
        return max(wait.total_seconds(), 0.0)
