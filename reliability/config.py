"""Settings from the environment, a `.env` file and tenant JSON, validated before anything starts.

The variables and defaults are the seed's (`N8N_*`, `CRON_SECRET`); the few we add carry the
same prefixes. A bad value is refused with one `ConfigError` naming the key and where it came
from, so nothing ever starts on a half-understood config: every value that could make a later
operation fail (a URL httpx cannot parse, a header it cannot send, a delay beyond `RANGES`, a
tenant id outside `TENANT_ID_PATTERN`, a file that is not UTF-8, nested or repeated JSON keys,
a key set twice in a `.env`) is refused here. No error message repeats a raw line or value
that could hold a secret.

Variables of the environment that we do not own are ignored. Unknown variables under our
prefixes (`N8N_`, `RELIABILITY_`) are ignored too (n8n's own `N8N_HOST` and friends share the
prefix): `foreign_variables` lists them and `foreign_warning` makes the one warning line the
service prints. Unknown keys in a file passed explicitly (`.env`, tenants JSON) are errors.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from reliability.backoff import Backoff, Strategy, backoff
from reliability.breaker import BreakerPolicy
from reliability.budget import BudgetPolicy
from reliability.clock import span
from reliability.config_input import (
    TENANT_ID_PATTERN,
    header_name_problem,
    header_value_problem,
    json_strict,
    read_utf8,
    tenant_id_problem,
    text_problem,
    url_problem,
    workflow_problem,
)

__all__ = [
    "RANGES",
    "TENANT_ID_PATTERN",
    "ConfigError",
    "RetryPolicy",
    "Settings",
    "TenantConfig",
    "TenantPolicy",
    "foreign_variables",
    "foreign_warning",
    "load_settings",
    "load_tenants",
    "parse_dotenv",
]

_T = TypeVar("_T")

DEFAULT_ROUTES: Mapping[str, tuple[str, ...]] = {
    "checkout.session.completed": ("client-onboarding",),
    "invoice.paid": ("weekly-recap",),
    "invoice.payment_failed": ("notify-gap-fill",),
    "customer.subscription.updated": ("notify-gap-fill",),
    "customer.subscription.deleted": ("notify-gap-fill",),
}
"""Which n8n workflows a Stripe event type triggers (override with `N8N_ROUTES`, JSON)."""


class ConfigError(ValueError):
    """A configuration value was refused. `key` and `source` say which one and where."""

    def __init__(self, key: str, source: str, problem: str) -> None:
        self.key = key
        self.source = source
        self.problem = problem
        super().__init__(f"{key} ({source}): {problem}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one delivery (milliseconds, as in the seed)."""

    max_retries: int = 3
    base_delay_ms: int = 1000
    max_delay_ms: int = 30000
    jitter_factor: float = 0.1
    strategy: Strategy = Strategy.ADDITIVE

    def backoff(self) -> Backoff:
        return backoff(
            self.strategy,
            base=self.base_delay_ms / 1000,
            cap=self.max_delay_ms / 1000,
            jitter_factor=self.jitter_factor,
        )


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """One tenant as the seed's JSON shape gives it; `None` means inherit the global setting."""

    tenant_id: str
    concurrency_limit: int | None = None
    circuit_breaker_threshold: int | None = None
    max_retries: int | None = None
    base_delay_ms: int | None = None
    max_delay_ms: int | None = None
    dlq_ttl_hours: float | None = None
    stripe_webhook_secrets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """Everything the layer needs for one tenant, with the global settings filled in."""

    tenant_id: str
    concurrency_limit: int
    retry: RetryPolicy
    breaker: BreakerPolicy
    dlq_ttl: timedelta
    stripe_webhook_secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Settings:
    """Global settings. Field names follow the environment variables, lower-cased."""

    n8n_webhook_url: str = "http://127.0.0.1:5678/webhook"
    n8n_api_key: str = ""
    n8n_api_key_header: str = "X-N8N-API-KEY"
    n8n_max_retries: int = 3
    n8n_base_delay_ms: int = 1000
    n8n_max_delay_ms: int = 30000
    n8n_jitter_factor: float = 0.1
    n8n_circuit_breaker_threshold: int = 10
    n8n_circuit_breaker_window_ms: int = 600_000
    n8n_circuit_breaker_recovery_ms: int = 300_000
    n8n_dlq_ttl_hours: float = 24.0
    n8n_dlq_cleanup_interval_ms: int = 3_600_000
    n8n_default_concurrency: int = 5
    n8n_max_concurrency: int = 20
    cron_secret: str = ""
    # Beyond the seed.
    n8n_backoff_strategy: Strategy = Strategy.ADDITIVE
    n8n_circuit_breaker_probes: int = 1
    n8n_connect_timeout_ms: int = 2000
    n8n_read_timeout_ms: int = 10000
    n8n_retry_budget_enabled: bool = False
    n8n_retry_budget_max_tokens: float = 10.0
    n8n_retry_budget_token_ratio: float = 0.1
    n8n_dlq_alert_threshold: int = 100
    reliability_database_url: str = "sqlite:///reliability.db"
    reliability_admin_token: str = ""
    reliability_body_limit_bytes: int = 1024 * 1024
    reliability_lease_margin_ms: int = 30_000
    reliability_outbox_retention_hours: float = 24.0
    reliability_fleet_limit: bool = True
    reliability_header_timeout_ms: int = 10_000
    reliability_body_timeout_ms: int = 30_000
    reliability_max_connections: int = 0
    """0: derived from the file-descriptor limit when the server starts."""
    reliability_reveal_unknown_tenant: bool = False
    n8n_routes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)

    @property
    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            threshold=self.n8n_circuit_breaker_threshold,
            window=self.n8n_circuit_breaker_window_ms / 1000,
            recovery=self.n8n_circuit_breaker_recovery_ms / 1000,
            probes=self.n8n_circuit_breaker_probes,
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.n8n_max_retries,
            base_delay_ms=self.n8n_base_delay_ms,
            max_delay_ms=self.n8n_max_delay_ms,
            jitter_factor=self.n8n_jitter_factor,
            strategy=self.n8n_backoff_strategy,
        )

    @property
    def budget_policy(self) -> BudgetPolicy | None:
        if not self.n8n_retry_budget_enabled:
            return None
        return BudgetPolicy(
            max_tokens=self.n8n_retry_budget_max_tokens,
            token_ratio=self.n8n_retry_budget_token_ratio,
        )

    def tenant(self, tenant_id: str) -> TenantPolicy:
        """The effective policy of a tenant; an unknown tenant gets the global settings."""
        t = self.tenants.get(tenant_id) or TenantConfig(tenant_id=tenant_id)
        retry = replace(
            self.retry_policy,
            max_retries=_pick(t.max_retries, self.n8n_max_retries),
            base_delay_ms=_pick(t.base_delay_ms, self.n8n_base_delay_ms),
            max_delay_ms=_pick(t.max_delay_ms, self.n8n_max_delay_ms),
        )
        breaker = replace(
            self.breaker_policy,
            threshold=_pick(t.circuit_breaker_threshold, self.n8n_circuit_breaker_threshold),
        )
        return TenantPolicy(
            tenant_id=tenant_id,
            concurrency_limit=_pick(t.concurrency_limit, self.n8n_default_concurrency),
            retry=retry,
            breaker=breaker,
            dlq_ttl=span(_pick(t.dlq_ttl_hours, self.n8n_dlq_ttl_hours) * 3600),
            stripe_webhook_secrets=t.stripe_webhook_secrets,
        )


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value


# -- parsing ------------------------------------------------------------------------------------

_PREFIXES = ("N8N_", "RELIABILITY_")
_TENANTS_FILE = "RELIABILITY_TENANTS_FILE"
_NOT_SETTINGS = frozenset({"RELIABILITY_TEST_DATABASE_URL", "RELIABILITY_REQUIRE_BROWSER"})
"""Variables of the test tooling that share the prefix (a CI job sets them beside the service's
own): not settings, so neither read nor refused as unknown."""


def _int(raw: str) -> int:
    value = float(raw.strip())
    if not math.isfinite(value) or value != int(value):
        raise ValueError("not a whole number")
    return int(value)


def _float(raw: str) -> float:
    value = float(raw.strip())
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("not a boolean (use true/false)")


def _routes(raw: str) -> dict[str, tuple[str, ...]]:
    data = json_strict(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    routes: dict[str, tuple[str, ...]] = {}
    for event_type, workflows in data.items():
        if text_problem(event_type) or not event_type.isprintable():
            raise ValueError("event types must be printable text")
        if isinstance(workflows, str):
            workflows = [workflows]
        if not isinstance(workflows, list) or not all(
            isinstance(w, str) and not workflow_problem(w.strip("/")) for w in workflows
        ):
            raise ValueError(
                f"workflows of {event_type!r} must be a list of URL paths "
                "(letters, digits, _ . ~ - and /)"
            )
        routes[event_type] = tuple(w.strip("/") for w in workflows)
    return routes


_Parser = Callable[[str], Any]

_ENV_FIELDS: dict[str, _Parser] = {
    "N8N_WEBHOOK_URL": str,
    "N8N_API_KEY": str,
    "N8N_API_KEY_HEADER": str,
    "N8N_MAX_RETRIES": _int,
    "N8N_BASE_DELAY_MS": _int,
    "N8N_MAX_DELAY_MS": _int,
    "N8N_JITTER_FACTOR": _float,
    "N8N_CIRCUIT_BREAKER_THRESHOLD": _int,
    "N8N_CIRCUIT_BREAKER_WINDOW_MS": _int,
    "N8N_CIRCUIT_BREAKER_RECOVERY_MS": _int,
    "N8N_DLQ_TTL_HOURS": _float,
    "N8N_DLQ_CLEANUP_INTERVAL_MS": _int,
    "N8N_DEFAULT_CONCURRENCY": _int,
    "N8N_MAX_CONCURRENCY": _int,
    "CRON_SECRET": str,
    "N8N_BACKOFF_STRATEGY": Strategy,
    "N8N_CIRCUIT_BREAKER_PROBES": _int,
    "N8N_CONNECT_TIMEOUT_MS": _int,
    "N8N_READ_TIMEOUT_MS": _int,
    "N8N_RETRY_BUDGET_ENABLED": _bool,
    "N8N_RETRY_BUDGET_MAX_TOKENS": _float,
    "N8N_RETRY_BUDGET_TOKEN_RATIO": _float,
    "N8N_DLQ_ALERT_THRESHOLD": _int,
    "RELIABILITY_DATABASE_URL": str,
    "RELIABILITY_ADMIN_TOKEN": str,
    "RELIABILITY_BODY_LIMIT_BYTES": _int,
    "RELIABILITY_LEASE_MARGIN_MS": _int,
    "RELIABILITY_OUTBOX_RETENTION_HOURS": _float,
    "RELIABILITY_FLEET_LIMIT": _bool,
    "RELIABILITY_HEADER_TIMEOUT_MS": _int,
    "RELIABILITY_BODY_TIMEOUT_MS": _int,
    "RELIABILITY_MAX_CONNECTIONS": _int,
    "RELIABILITY_REVEAL_UNKNOWN_TENANT": _bool,
    "N8N_ROUTES": _routes,
}

_EXPECTED = {
    _int: "a whole number",
    _float: "a number",
    _bool: "true or false",
    Strategy: "one of " + ", ".join(s.value for s in Strategy),
    _routes: "a JSON object of event type -> [workflow, ...]",
}


def parse_dotenv(text: str, *, source: str = ".env") -> dict[str, str]:
    """Parse a `.env` file as the seed writes it: `KEY=value  # comment`, blank and `#` lines.

    Values may be quoted ('...' or "..."), in which case a `#` inside is kept. An `export `
    prefix is allowed. A line without `=` and a key set twice are errors naming the line
    (never echoing it: it may hold a secret).
    """
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, rest = stripped.partition("=")
        key = key.strip()
        if not sep or not key or not (key.isascii() and key.replace("_", "").isalnum()):
            raise ConfigError(f"line {number}", source, "expected NAME=value")
        if key in lines:
            raise ConfigError(key, source, f"set twice (lines {lines[key]} and {number})")
        lines[key] = number
        values[key] = _dotenv_value(rest.strip(), key=key, source=source)
    return values


def _dotenv_value(rest: str, *, key: str, source: str) -> str:
    if rest[:1] in {"'", '"'}:
        quote = rest[0]
        end = rest.find(quote, 1)
        if end == -1:
            raise ConfigError(key, source, "unterminated quoted value")
        tail = rest[end + 1 :].strip()
        if tail and not tail.startswith("#"):
            raise ConfigError(key, source, "unexpected text after the quoted value")
        return rest[1:end]
    # Unquoted: a comment starts at a `#` preceded by whitespace (or at the start).
    for i, ch in enumerate(rest):
        if ch == "#" and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].rstrip()
    return rest


def foreign_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Variables under our prefixes that are not settings (sorted): ignored, worth a warning."""
    return tuple(sorted(key for key in environ if _is_foreign(key)))


def _is_foreign(key: str) -> bool:
    return (
        key.startswith(_PREFIXES)
        and key not in _ENV_FIELDS
        and key not in _NOT_SETTINGS
        and key != _TENANTS_FILE
    )


def foreign_warning(names: Iterable[str]) -> str | None:
    """One line naming ignored variables, with a "did you mean" for near-misses of ours."""
    parts: list[str] = []
    for name in names:
        close = difflib.get_close_matches(name, [*_ENV_FIELDS, _TENANTS_FILE], n=1, cutoff=0.85)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    if not parts:
        return None
    return "ignoring variables that are not settings: " + ", ".join(parts)


def _dotenv_sources(path: Path, *, explicit: bool) -> dict[str, tuple[str, str]]:
    try:
        text = read_utf8(path)
    except ValueError as exc:
        raise ConfigError("env file", str(path), str(exc)) from None
    sources: dict[str, tuple[str, str]] = {}
    for key, value in parse_dotenv(text, source=str(path)).items():
        if explicit and _is_foreign(key):
            raise ConfigError(key, str(path), _unknown(key))
        sources[key] = (value, str(path))
    return sources


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, [*_ENV_FIELDS, _TENANTS_FILE], n=1, cutoff=0.85)
    return "unknown setting" + (f" (did you mean {close[0]}?)" if close else "")


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv: str | Path | None = None,
    tenants_file: str | Path | None = None,
    strict_dotenv: bool = True,
    strict_environ: bool = False,
) -> Settings:
    """Build validated `Settings`: `.env` first, then the environment on top, then tenants.

    Unknown `N8N_`/`RELIABILITY_` keys of the `.env` are refused when `strict_dotenv` (a file
    passed explicitly: a typo must not silently fall back to a default); those of `environ` are
    ignored unless `strict_environ` (see `foreign_variables` for the warning).
    """
    env = dict(os.environ if environ is None else environ)
    sources: dict[str, tuple[str, str]] = {}
    if dotenv is not None:
        sources.update(_dotenv_sources(Path(dotenv), explicit=strict_dotenv))
    for key, value in env.items():
        if key in _ENV_FIELDS or key == _TENANTS_FILE:
            sources[key] = (value, "environment")
        elif strict_environ and _is_foreign(key):
            raise ConfigError(key, "environment", _unknown(key))

    kwargs: dict[str, Any] = {}
    for key, (raw, source) in sorted(sources.items()):
        parser = _ENV_FIELDS.get(key)
        if parser is None:
            continue
        problem = text_problem(raw)
        if problem is not None:
            raise ConfigError(key, source, problem)
        try:
            kwargs[key.lower()] = parser(raw)
        except ValueError as exc:
            raise ConfigError(key, source, _parse_problem(key, parser, raw, exc)) from None

    settings = Settings(**kwargs)
    _validate(settings, {k: s for k, (_, s) in sources.items()})
    if tenants_file is None and _TENANTS_FILE in sources:
        tenants_file = sources[_TENANTS_FILE][0]
    if tenants_file:
        settings = replace(settings, tenants=load_tenants(tenants_file, settings))
    return settings


def _parse_problem(key: str, parser: _Parser, raw: str, exc: ValueError) -> str:
    expected = _EXPECTED.get(parser, "a string")
    if parser is _routes:
        return f"must be {expected} ({exc})"
    # Only the non-string settings get here, none of which is a secret.
    return f"must be {expected}, got {raw if len(raw) <= 80 else raw[:77] + '...'!r}"


_MINUTE_MS = 60_000
_HOUR_MS = 60 * _MINUTE_MS
_DAY_MS = 24 * _HOUR_MS

RANGES: Mapping[str, tuple[float, float, str]] = {
    "N8N_MAX_RETRIES": (0, 100, ""),
    "N8N_BASE_DELAY_MS": (1, _HOUR_MS, " ms"),
    "N8N_MAX_DELAY_MS": (1, _DAY_MS, " ms"),
    "N8N_JITTER_FACTOR": (0, 1, ""),
    "N8N_CIRCUIT_BREAKER_THRESHOLD": (1, 100_000, ""),
    "N8N_CIRCUIT_BREAKER_WINDOW_MS": (1, _DAY_MS, " ms"),
    "N8N_CIRCUIT_BREAKER_RECOVERY_MS": (1, _DAY_MS, " ms"),
    "N8N_CIRCUIT_BREAKER_PROBES": (1, 1000, ""),
    "N8N_DLQ_TTL_HOURS": (0.01, 24 * 366, " hours"),
    "RELIABILITY_OUTBOX_RETENTION_HOURS": (0.01, 24 * 366, " hours"),
    "N8N_DLQ_CLEANUP_INTERVAL_MS": (1000, _DAY_MS, " ms"),
    "N8N_DEFAULT_CONCURRENCY": (1, 10_000, ""),
    "N8N_MAX_CONCURRENCY": (1, 10_000, ""),
    "N8N_CONNECT_TIMEOUT_MS": (1, 10 * _MINUTE_MS, " ms"),
    "N8N_READ_TIMEOUT_MS": (1, 10 * _MINUTE_MS, " ms"),
    "N8N_RETRY_BUDGET_MAX_TOKENS": (0.001, 1_000_000, ""),
    "N8N_RETRY_BUDGET_TOKEN_RATIO": (0.001, 1, ""),
    "N8N_DLQ_ALERT_THRESHOLD": (1, 100_000_000, ""),
    "RELIABILITY_BODY_LIMIT_BYTES": (1, 64 * 1024 * 1024, " bytes"),
    "RELIABILITY_LEASE_MARGIN_MS": (1, _HOUR_MS, " ms"),
    "RELIABILITY_HEADER_TIMEOUT_MS": (100, 10 * _MINUTE_MS, " ms"),
    "RELIABILITY_BODY_TIMEOUT_MS": (100, 10 * _MINUTE_MS, " ms"),
    "RELIABILITY_MAX_CONNECTIONS": (0, 1_000_000, ""),
}
"""Every number setting's inclusive range (and unit): beyond it a later timer, timedelta or
allocation would fail, so the value is refused at load time. Tenant overrides share the ranges of
the globals they override."""


def _range_problem(key: str, value: float) -> str | None:
    low, high, unit = RANGES[key]
    if low <= value <= high:
        return None
    return f"must lie in [{_num(low)}, {_num(high)}]{unit}, got {_num(value)}"


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _validate(s: Settings, where: Mapping[str, str]) -> None:
    def check(problem: str | None, key: str) -> None:
        if problem is not None:
            raise ConfigError(key, where.get(key, "default"), problem)

    for key in RANGES:
        check(_range_problem(key, getattr(s, key.lower())), key)
    check(url_problem(s.n8n_webhook_url), "N8N_WEBHOOK_URL")
    for workflows in s.n8n_routes.values():
        for workflow in workflows:
            check(url_problem(f"{s.n8n_webhook_url.rstrip('/')}/{workflow}"), "N8N_ROUTES")
    check(header_name_problem(s.n8n_api_key_header), "N8N_API_KEY_HEADER")
    check(header_value_problem(s.n8n_api_key), "N8N_API_KEY")
    check(header_value_problem(s.reliability_admin_token), "RELIABILITY_ADMIN_TOKEN")
    check(_database_url_problem(s.reliability_database_url), "RELIABILITY_DATABASE_URL")
    if s.n8n_max_delay_ms < s.n8n_base_delay_ms:
        check(
            f"must be at least N8N_BASE_DELAY_MS ({s.n8n_base_delay_ms}), got {s.n8n_max_delay_ms}",
            "N8N_MAX_DELAY_MS",
        )
    if s.n8n_default_concurrency > s.n8n_max_concurrency:
        check(
            f"must not exceed N8N_MAX_CONCURRENCY ({s.n8n_max_concurrency}), "
            f"got {s.n8n_default_concurrency}",
            "N8N_DEFAULT_CONCURRENCY",
        )


def _database_url_problem(url: str) -> str | None:
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return "must start with sqlite:///, postgresql:// or postgres://"
    return None


# -- tenants ------------------------------------------------------------------------------------

_TENANT_KEYS = {
    "tenant_id",
    "concurrency_limit",
    "circuit_breaker_threshold",
    "retry_policy",
    "dlq_ttl_hours",
    "stripe_webhook_secrets",
}
_RETRY_KEYS = {"max_retries", "base_delay_ms", "max_delay_ms"}
_THRESHOLD = "N8N_CIRCUIT_BREAKER_THRESHOLD"


def load_tenants(path: str | Path, settings: Settings) -> dict[str, TenantConfig]:
    """Read tenants from a JSON file holding one tenant object or a list of them."""
    source = str(path)
    try:
        data = json_strict(read_utf8(Path(path)))
    except ValueError as exc:
        raise ConfigError("tenants", source, str(exc)) from None
    return parse_tenants(data, settings, source=source)


def parse_tenants(data: Any, settings: Settings, *, source: str) -> dict[str, TenantConfig]:
    """Validate tenant objects (already decoded JSON) against the global settings."""
    items: Iterable[Any] = data if isinstance(data, list) else [data]
    tenants: dict[str, TenantConfig] = {}
    for index, item in enumerate(items):
        where = f"tenants[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(where, source, "must be a JSON object")
        tenant = _parse_tenant(item, settings, where=where, source=source)
        if tenant.tenant_id in tenants:
            raise ConfigError(
                f"{where}.tenant_id", source, f"duplicate tenant id {tenant.tenant_id!r}"
            )
        tenants[tenant.tenant_id] = tenant
    return tenants


def _parse_tenant(
    item: Mapping[str, Any], settings: Settings, *, where: str, source: str
) -> TenantConfig:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}.{key}", source, problem)

    for key in item:
        if key not in _TENANT_KEYS:
            raise fail(key, "unknown key")
    tenant_id = item.get("tenant_id")
    problem = tenant_id_problem(tenant_id) if isinstance(tenant_id, str) else "must be a string"
    if problem is not None:
        raise fail("tenant_id", problem)
    assert isinstance(tenant_id, str)

    def optional_int(key: str, value: Any, minimum: int, global_key: str = "") -> int | None:
        if value is None:
            return None
        n = int(_tenant_number(fail, key, value, whole=True))
        problem = _range_problem(global_key, n) if global_key else None
        if n < minimum or problem is not None:
            raise fail(
                key, problem if n >= minimum and problem else f"must be at least {minimum}, got {n}"
            )
        return n

    concurrency = optional_int("concurrency_limit", item.get("concurrency_limit"), 1)
    if concurrency is not None and concurrency > settings.n8n_max_concurrency:
        raise fail(
            "concurrency_limit",
            f"{concurrency} exceeds N8N_MAX_CONCURRENCY ({settings.n8n_max_concurrency})",
        )
    threshold_raw = item.get("circuit_breaker_threshold")
    threshold = optional_int("circuit_breaker_threshold", threshold_raw, 1, _THRESHOLD)

    retry = item.get("retry_policy", {})
    if not isinstance(retry, dict):
        raise fail("retry_policy", "must be a JSON object")
    for key in retry:
        if key not in _RETRY_KEYS:
            raise fail(f"retry_policy.{key}", "unknown key")
    max_retries = optional_int(
        "retry_policy.max_retries", retry.get("max_retries"), 0, "N8N_MAX_RETRIES"
    )
    base = optional_int(
        "retry_policy.base_delay_ms", retry.get("base_delay_ms"), 1, "N8N_BASE_DELAY_MS"
    )
    cap = optional_int(
        "retry_policy.max_delay_ms", retry.get("max_delay_ms"), 1, "N8N_MAX_DELAY_MS"
    )
    effective_base = settings.n8n_base_delay_ms if base is None else base
    effective_cap = settings.n8n_max_delay_ms if cap is None else cap
    if effective_cap < effective_base:
        raise fail(
            "retry_policy.max_delay_ms",
            f"must be at least base_delay_ms ({effective_base}), got {effective_cap}",
        )

    ttl_raw = item.get("dlq_ttl_hours")
    ttl = None if ttl_raw is None else _tenant_number(fail, "dlq_ttl_hours", ttl_raw, whole=False)
    if ttl is not None and (problem := _range_problem("N8N_DLQ_TTL_HOURS", ttl)) is not None:
        raise fail("dlq_ttl_hours", problem)

    secrets = _signing_secrets(item.get("stripe_webhook_secrets", []))
    if secrets is None:
        raise fail(
            "stripe_webhook_secrets",
            "must be a list of non-empty strings of printable ASCII without spaces (whsec_...)",
        )
    return TenantConfig(
        tenant_id=tenant_id,
        concurrency_limit=concurrency,
        circuit_breaker_threshold=threshold,
        max_retries=max_retries,
        base_delay_ms=base,
        max_delay_ms=cap,
        dlq_ttl_hours=ttl,
        stripe_webhook_secrets=secrets,
    )


def _tenant_number(
    fail: Callable[[str, str], ConfigError], key: str, value: Any, *, whole: bool
) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(key, f"must be a number, got {value!r}")
    if not math.isfinite(value) or (whole and value != int(value)):
        raise fail(key, f"must be a whole number, got {value!r}")
    return int(value) if whole else float(value)


def _signing_secrets(raw: Any) -> tuple[str, ...] | None:
    """The secrets (one string or a list), or None when one is not a usable secret."""
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(
        isinstance(s, str) and s and s.isascii() and s.isprintable() and " " not in s
        for s in values
    ):
        return None
    return tuple(values)
