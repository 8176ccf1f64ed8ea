"""The scenario format: what a chaos run simulates, as frozen data loaded from YAML.

A scenario names its tenants (the seed's tenant JSON shape, with counts), global settings
overrides (the environment variables), traffic (events, rate shape, event-type mix, duration in
simulated seconds), an n8n fault profile (`harness.fakes.faults`' format), Stripe delivery faults,
crash points, the cron drain cadence, the store, and the invariants to check with their bounds.
Every error names the file and the key path (`traffic.mix.invoice.paid: ...`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeGuard

import yaml

from harness.data import data_path
from harness.errors import InputError
from harness.fakes.faults import FaultProfile, FaultProfileError, parse_profile
from reliability.backoff import Strategy
from reliability.config import ConfigError, Settings, TenantConfig, load_settings, parse_tenants

__all__ = [
    "CATALOGUE",
    "INVARIANTS",
    "Burst",
    "Comparison",
    "Crash",
    "Cron",
    "DlqPlan",
    "Scenario",
    "ScenarioError",
    "StripeFaults",
    "TenantGroup",
    "Traffic",
    "find_scenario",
    "load_catalogue",
    "load_scenario",
    "parse_scenario",
]

CATALOGUE: Final = data_path("catalogue")
"""The default catalogue (packaged): every `*.yaml` file here is one scenario."""

CATALOGUE_SHOWN_AS: Final = "scenarios/catalogue"
"""Where results and reports say a catalogue scenario lives: its folder in the repository."""

INVARIANTS: Final = (
    "nothing_lost",
    "no_double_processing",
    "backoff_bounds",
    "breaker_thresholds",
    "quotas",
    "dlq_ttl",
    "outcome_bounds",
    "determinism",
)
"""The checkers, one per invariant of DESIGN.md (`outcome_bounds` checks the scenario's own
bounds on figures; `determinism` reruns the scenario and compares trace hashes)."""

_DEFAULT_INVARIANTS: Final = INVARIANTS[:-1]
_OUTCOME_BOUNDS: Final = frozenset(
    {
        "min_delivered_ratio",
        "max_dead_lettered",
        "max_dead_lettered_ratio",
        "all_delivered_within",
        "max_duplicate_calls",
        "min_events",
        "min_tenants",
    }
)
_EVENT_TYPES: Final = (
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)


class ScenarioError(InputError):
    """A scenario that cannot be used; names the file and the key path."""


@dataclass(frozen=True, slots=True)
class TenantGroup:
    """`count` tenants configured alike; ids from `id` (a `{i}` template when count > 1)."""

    ids: tuple[str, ...]
    config: Mapping[str, Any]
    """The seed's tenant JSON minus `tenant_id` (concurrency_limit, retry_policy, ...)."""
    weight: float = 1.0
    """This group's share of the traffic, split evenly over its tenants."""


@dataclass(frozen=True, slots=True)
class Burst:
    """`events` extra events arriving within `spread` seconds from `at` (many clients at once)."""

    at: float
    events: int
    spread: float = 0.0


@dataclass(frozen=True, slots=True)
class Traffic:
    """Stripe events to send: how many, over how long, in what shape and mix."""

    events: int = 100
    duration: float = 3600.0
    start: float = 0.0
    shape: str = "uniform"
    """`uniform` (sorted uniform arrivals), `poisson` (exponential gaps) or `diurnal`."""
    mix: tuple[tuple[str, float], ...] = tuple((t, 1.0) for t in _EVENT_TYPES)
    bursts: tuple[Burst, ...] = ()


@dataclass(frozen=True, slots=True)
class StripeFaults:
    """Delivery faults of the fake Stripe, as probabilities per event (0 = off)."""

    duplicates: float = 0.0
    """A second delivery of the same event later (re-signed, fresh `t`): must be deduped."""
    duplicate_delay: tuple[float, float] = (1.0, 600.0)
    out_of_order: float = 0.0
    """The delivery is held back by up to `out_of_order_delay`, so later events overtake it."""
    out_of_order_delay: tuple[float, float] = (1.0, 120.0)
    replays: float = 0.0
    """The captured request is replayed later with its old `t`: must be refused (stale)."""
    replay_delay: tuple[float, float] = (400.0, 3600.0)
    resigned_old: float = 0.0
    """The event is re-signed with a fresh `t` later: must be deduped."""
    resigned_delay: tuple[float, float] = (600.0, 86_400.0)
    bad_signatures: float = 0.0
    """An extra forged request (tampered, no v1, unparsable, missing): must be refused."""
    concurrent_duplicates: float = 0.0
    """A burst of `burst_copies` identical deliveries at the same instant: one processes."""
    burst_copies: int = 5
    retry_schedule: tuple[float, ...] = (60.0, 600.0, 3600.0, 10_800.0)
    """Stripe's retries (seconds) when our endpoint did not answer 2xx (it was down)."""


@dataclass(frozen=True, slots=True)
class Crash:
    """Kill the dispatcher at `at` (in-flight deliveries cancelled, leases left in the store),
    restart a fresh one at `restart` (fresh in-memory breakers and quotas)."""

    at: float
    restart: float


@dataclass(frozen=True, slots=True)
class Cron:
    """The external scheduler calling the drain endpoint."""

    interval: float = 60.0
    batch: int = 100
    budget: float = 10.0


@dataclass(frozen=True, slots=True)
class DlqPlan:
    """Manual DLQ retries and TTL probes."""

    retries: tuple[tuple[float, int], ...] = ()
    """(at, count): at `at`, retry the `count` oldest visible entries by hand."""
    probes: int = 50
    """How many dead letters get visibility probes just before and at their `expires_at`."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """Run variants of the scenario side by side (`herd`) or two replay guards (`replay`)."""

    kind: str
    strategies: tuple[Strategy, ...] = (
        Strategy.NONE,
        Strategy.ADDITIVE,
        Strategy.FULL,
        Strategy.EQUAL,
        Strategy.DECORRELATED,
    )
    budget: tuple[bool, ...] = (False, True)
    bucket: float = 1.0
    """Seconds per arrivals bucket at n8n (peak arrivals are per bucket, scaled to per second)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One chaos scenario, validated."""

    name: str
    file: str
    description: str
    seed: int
    settings: Settings
    tenants: tuple[str, ...]
    weights: tuple[float, ...]
    traffic: Traffic
    n8n_faults: FaultProfile
    stripe: StripeFaults
    crashes: tuple[Crash, ...]
    cron: Cron
    dlq: DlqPlan
    store_url: str
    settle: float
    """Simulated seconds after the traffic ends in which drains go on (retries finish)."""
    invariants: Mapping[str, Mapping[str, Any]]
    comparison: Comparison | None = None
    settings_overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def end(self) -> float:
        """The last simulated second of the run."""
        return self.traffic.start + self.traffic.duration + self.settle


# --- loading ---------------------------------------------------------------------------------

_TOP: Final = frozenset(
    {
        "name",
        "description",
        "seed",
        "settings",
        "tenants",
        "traffic",
        "n8n",
        "stripe",
        "crashes",
        "cron",
        "dlq",
        "store",
        "settle",
        "invariants",
        "comparison",
    }
)
_DEFAULT_SETTINGS: Final = {
    "N8N_WEBHOOK_URL": "http://fake-n8n.invalid/webhook",
    "N8N_API_KEY_HEADER": "X-N8N-Webhook-Key",
    "N8N_API_KEY": "local-test-webhook-key",
}
"""The in-process fake n8n's address and the header-auth credential its workflows expect."""


def load_catalogue(directory: str | Path = CATALOGUE) -> list[Scenario]:
    """Every `*.yaml` scenario in `directory`, sorted by file name."""
    files = sorted(Path(directory).glob("*.yaml"))
    return [load_scenario(f) for f in files]


def find_scenario(name_or_file: str, directory: str | Path = CATALOGUE) -> Scenario:
    """A scenario by catalogue name (`smoke`) or by path to a YAML file."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_scenario(path)
    candidate = Path(directory) / f"{name_or_file}.yaml"
    if candidate.exists():
        return load_scenario(candidate)
    known = ", ".join(sorted(p.stem for p in Path(directory).glob("*.yaml")))
    raise ScenarioError(str(name_or_file), "(name)", f"no such scenario; known: {known}")


def display_path(path: str | Path) -> str:
    """A scenario file as results and commands show it, so reports do not depend on where the
    package or the checkout lies: a catalogue file as `scenarios/catalogue/<name>.yaml`, a file
    under the working directory relative to it, any other as given."""
    resolved = Path(path).resolve()
    if resolved.parent == CATALOGUE.resolve():
        return f"{CATALOGUE_SHOWN_AS}/{resolved.name}"
    if resolved.is_relative_to(Path.cwd()):
        return resolved.relative_to(Path.cwd()).as_posix()
    return str(path)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    source = display_path(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(source, "(file)", f"cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(source, "(file)", f"not valid YAML: {exc}") from exc
    return parse_scenario(data, source=source)


def parse_scenario(data: object, *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as parsed YAML (a mapping)."""
    p = _Parser(source)
    top = p.mapping("(top level)", data, _TOP)
    name = p.string("name", top.get("name", Path(source).stem))
    description = p.string("description", top.get("description", name))
    seed = p.integer("seed", top.get("seed", 0), minimum=0)
    overrides = p.settings_overrides(top.get("settings", {}))
    settings = p.settings(overrides)
    tenants, weights, settings = p.tenants(top.get("tenants"), settings)
    traffic = p.traffic(top.get("traffic", {}))
    faults = p.n8n(top.get("n8n", {}))
    stripe = p.stripe(top.get("stripe", {}))
    crashes = p.crashes(top.get("crashes", []))
    cron = p.cron(top.get("cron", {}))
    dlq = p.dlq(top.get("dlq", {}))
    store_url = p.store(top.get("store", {}))
    settle = p.number("settle", top.get("settle", 3600.0), minimum=0.0)
    invariants = p.invariants(top.get("invariants"))
    comparison = p.comparison(top.get("comparison"))
    end = traffic.start + traffic.duration + settle
    for i, crash in enumerate(crashes):
        if crash.restart > end:
            p.fail(f"crashes[{i}].restart", f"{crash.restart:g} is after the run ends ({end:g})")
    return Scenario(
        name=name,
        file=source,
        description=description,
        seed=seed,
        settings=settings,
        tenants=tenants,
        weights=weights,
        traffic=traffic,
        n8n_faults=faults,
        stripe=stripe,
        crashes=crashes,
        cron=cron,
        dlq=dlq,
        store_url=store_url,
        settle=settle,
        invariants=invariants,
        comparison=comparison,
        settings_overrides=overrides,
    )


def _is_number(raw: object) -> TypeGuard[int | float]:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


class _Parser:
    """Validation helpers that know the source file, so every error can name it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ScenarioError:
        raise ScenarioError(self.source, key, problem)

    # -- primitives -------------------------------------------------------------------------

    def mapping(self, key: str, raw: object, allowed: frozenset[str]) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(key, f"must be a mapping, got {type(raw).__name__}")
        assert isinstance(raw, Mapping)
        for name in raw:
            if str(name) not in allowed:
                known = ", ".join(sorted(allowed))
                where = str(name) if key == "(top level)" else f"{key}.{name}"
                self.fail(where, f"unknown key (known: {known})")
        return {str(k): v for k, v in raw.items()}

    def string(self, key: str, raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip():
            self.fail(key, f"must be a non-empty string, got {raw!r}")
        assert isinstance(raw, str)
        return raw

    def number(
        self, key: str, raw: object, *, minimum: float | None = None, positive: bool = False
    ) -> float:
        if not _is_number(raw) or not math.isfinite(raw):
            self.fail(key, f"must be a number, got {raw!r}")
        assert _is_number(raw)
        value = float(raw)
        if positive and value <= 0:
            self.fail(key, f"must be above 0, got {value:g}")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum:g}, got {value:g}")
        return value

    def integer(self, key: str, raw: object, *, minimum: int | None = None) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            self.fail(key, f"must be a whole number, got {raw!r}")
        assert isinstance(raw, int)
        if minimum is not None and raw < minimum:
            self.fail(key, f"must be at least {minimum}, got {raw}")
        return raw

    def probability(self, key: str, raw: object) -> float:
        value = self.number(key, raw)
        if not 0.0 <= value <= 1.0:
            self.fail(key, f"probability {value:g} is outside 0..1")
        return value

    def boolean(self, key: str, raw: object) -> bool:
        if not isinstance(raw, bool):
            self.fail(key, f"must be true or false, got {raw!r}")
        return bool(raw)

    def span(self, key: str, raw: object) -> tuple[float, float]:
        if not isinstance(raw, list) or len(raw) != 2:
            self.fail(key, f"must be a [min, max] pair of seconds, got {raw!r}")
        assert isinstance(raw, list)
        low = self.number(f"{key}[0]", raw[0], minimum=0.0)
        high = self.number(f"{key}[1]", raw[1], minimum=0.0)
        if high < low:
            self.fail(key, f"max {high:g} is below min {low:g}")
        return low, high

    def items(self, key: str, raw: object) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail(key, f"must be a list, got {type(raw).__name__}")
        assert isinstance(raw, list)
        return raw

    # -- sections ---------------------------------------------------------------------------

    def settings_overrides(self, raw: object) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail("settings", f"must be a mapping of N8N_* settings, got {type(raw).__name__}")
        assert isinstance(raw, Mapping)
        out: dict[str, str] = {}
        for k, v in raw.items():
            key = str(k).upper()
            if isinstance(v, bool):
                out[key] = "true" if v else "false"
            elif isinstance(v, int | float | str):
                out[key] = str(v)
            else:
                self.fail(f"settings.{k}", f"must be a number, string or boolean, got {v!r}")
        return out

    def settings(self, overrides: Mapping[str, str]) -> Settings:
        environ = {**_DEFAULT_SETTINGS, **overrides}
        try:
            return load_settings(environ)
        except ConfigError as exc:
            self.fail(f"settings.{exc.key}", exc.problem)
            raise  # unreachable: fail raises

    def tenants(
        self, raw: object, settings: Settings
    ) -> tuple[tuple[str, ...], tuple[float, ...], Settings]:
        groups = self.items("tenants", raw)
        if not groups:
            self.fail("tenants", "give at least one tenant group")
        configs: list[dict[str, Any]] = []
        ids: list[str] = []
        weights: list[float] = []
        allowed = frozenset({"id", "count", "config", "weight"})
        for gi, graw in enumerate(groups):
            key = f"tenants[{gi}]"
            g = self.mapping(key, graw, allowed)
            count = self.integer(f"{key}.count", g.get("count", 1), minimum=1)
            template = self.string(f"{key}.id", g.get("id", f"tenant-{gi}-{{i:03d}}"))
            if count > 1 and "{i" not in template:
                self.fail(f"{key}.id", "a group of several tenants needs an `{i}` in its id")
            weight = self.number(f"{key}.weight", g.get("weight", 1.0), positive=True)
            config = g.get("config", {})
            if not isinstance(config, Mapping):
                self.fail(f"{key}.config", "must be a mapping (the seed's tenant JSON)")
            if "tenant_id" in config:
                self.fail(f"{key}.config.tenant_id", "give ids with `id`, not in config")
            for i in range(count):
                try:
                    tid = template.format(i=i) if "{i" in template else template
                except (KeyError, IndexError, ValueError) as exc:
                    self.fail(f"{key}.id", f"bad template {template!r}: {exc}")
                ids.append(tid)
                configs.append({**config, "tenant_id": tid})
                weights.append(weight / count)
        try:
            parsed = parse_tenants(configs, settings, source=self.source)
        except ConfigError as exc:
            self.fail(exc.key, exc.problem)
        if len(parsed) != len(ids):
            self.fail("tenants", "tenant ids must be unique across groups")
        with_secrets: dict[str, TenantConfig] = {}
        for tid, tenant in parsed.items():
            secrets = tenant.stripe_webhook_secrets or (f"whsec_sim_{tid}",)
            with_secrets[tid] = TenantConfig(
                tenant_id=tid,
                concurrency_limit=tenant.concurrency_limit,
                circuit_breaker_threshold=tenant.circuit_breaker_threshold,
                max_retries=tenant.max_retries,
                base_delay_ms=tenant.base_delay_ms,
                max_delay_ms=tenant.max_delay_ms,
                dlq_ttl_hours=tenant.dlq_ttl_hours,
                stripe_webhook_secrets=secrets,
            )
        return tuple(ids), tuple(weights), replace(settings, tenants=with_secrets)

    def traffic(self, raw: object) -> Traffic:
        allowed = frozenset({"events", "duration", "start", "shape", "mix", "bursts"})
        m = self.mapping("traffic", raw, allowed)
        events = self.integer("traffic.events", m.get("events", 100), minimum=0)
        duration = self.number("traffic.duration", m.get("duration", 3600.0), positive=True)
        start = self.number("traffic.start", m.get("start", 0.0), minimum=0.0)
        shape = m.get("shape", "uniform")
        if shape not in ("uniform", "poisson", "diurnal"):
            self.fail("traffic.shape", f"must be uniform, poisson or diurnal, got {shape!r}")
        mix = Traffic().mix
        if "mix" in m:
            mraw = m["mix"]
            if not isinstance(mraw, Mapping) or not mraw:
                self.fail("traffic.mix", "must map event types to weights")
            assert isinstance(mraw, Mapping)
            pairs = []
            for etype, w in mraw.items():
                if etype not in _EVENT_TYPES:
                    self.fail(f"traffic.mix.{etype}", f"unknown event type (known: {_EVENT_TYPES})")
                pairs.append((str(etype), self.number(f"traffic.mix.{etype}", w, positive=True)))
            mix = tuple(pairs)
        bursts = []
        for i, braw in enumerate(self.items("traffic.bursts", m.get("bursts"))):
            key = f"traffic.bursts[{i}]"
            b = self.mapping(key, braw, frozenset({"at", "events", "spread"}))
            if "at" not in b or "events" not in b:
                self.fail(key, "needs `at` and `events`")
            bursts.append(
                Burst(
                    at=self.number(f"{key}.at", b["at"], minimum=0.0),
                    events=self.integer(f"{key}.events", b["events"], minimum=1),
                    spread=self.number(f"{key}.spread", b.get("spread", 0.0), minimum=0.0),
                )
            )
        return Traffic(events, duration, start, str(shape), mix, tuple(bursts))

    def n8n(self, raw: object) -> FaultProfile:
        m = self.mapping("n8n", raw, frozenset({"faults"}))
        try:
            return parse_profile(m.get("faults") or {}, source=f"{self.source}: n8n.faults")
        except FaultProfileError as exc:
            raise ScenarioError(self.source, f"n8n.faults.{exc.key}", exc.problem) from None

    def stripe(self, raw: object) -> StripeFaults:
        d = StripeFaults()
        allowed = frozenset(
            {
                "duplicates",
                "duplicate_delay",
                "out_of_order",
                "out_of_order_delay",
                "replays",
                "replay_delay",
                "resigned_old",
                "resigned_delay",
                "bad_signatures",
                "concurrent_duplicates",
                "burst_copies",
                "retry_schedule",
            }
        )
        m = self.mapping("stripe", raw, allowed)

        def prob(k: str, default: float) -> float:
            return self.probability(f"stripe.{k}", m[k]) if k in m else default

        def span(k: str, default: tuple[float, float]) -> tuple[float, float]:
            return self.span(f"stripe.{k}", m[k]) if k in m else default

        schedule = d.retry_schedule
        if "retry_schedule" in m:
            items = self.items("stripe.retry_schedule", m["retry_schedule"])
            schedule = tuple(
                self.number(f"stripe.retry_schedule[{i}]", x, positive=True)
                for i, x in enumerate(items)
            )
        replay = span("replay_delay", d.replay_delay)
        if replay[0] <= 300:
            self.fail("stripe.replay_delay", "a replay must come after the 300 s tolerance")
        return StripeFaults(
            duplicates=prob("duplicates", d.duplicates),
            duplicate_delay=span("duplicate_delay", d.duplicate_delay),
            out_of_order=prob("out_of_order", d.out_of_order),
            out_of_order_delay=span("out_of_order_delay", d.out_of_order_delay),
            replays=prob("replays", d.replays),
            replay_delay=replay,
            resigned_old=prob("resigned_old", d.resigned_old),
            resigned_delay=span("resigned_delay", d.resigned_delay),
            bad_signatures=prob("bad_signatures", d.bad_signatures),
            concurrent_duplicates=prob("concurrent_duplicates", d.concurrent_duplicates),
            burst_copies=self.integer("stripe.burst_copies", m.get("burst_copies", 5), minimum=2),
            retry_schedule=schedule,
        )

    def crashes(self, raw: object) -> tuple[Crash, ...]:
        out: list[Crash] = []
        for i, craw in enumerate(self.items("crashes", raw)):
            key = f"crashes[{i}]"
            c = self.mapping(key, craw, frozenset({"at", "restart"}))
            if "at" not in c or "restart" not in c:
                self.fail(key, "needs `at` and `restart` (simulated seconds)")
            at = self.number(f"{key}.at", c["at"], minimum=0.0)
            restart = self.number(f"{key}.restart", c["restart"], minimum=0.0)
            if restart <= at:
                self.fail(f"{key}.restart", f"{restart:g} is not after the crash at {at:g}")
            if out and at < out[-1].restart:
                self.fail(f"{key}.at", "crashes must be in order and not overlap")
            out.append(Crash(at, restart))
        return tuple(out)

    def cron(self, raw: object) -> Cron:
        m = self.mapping("cron", raw, frozenset({"interval", "batch", "budget"}))
        return Cron(
            interval=self.number("cron.interval", m.get("interval", 60.0), positive=True),
            batch=self.integer("cron.batch", m.get("batch", 100), minimum=1),
            budget=self.number("cron.budget", m.get("budget", 10.0), positive=True),
        )

    def dlq(self, raw: object) -> DlqPlan:
        m = self.mapping("dlq", raw, frozenset({"retries", "probes"}))
        retries = []
        for i, rraw in enumerate(self.items("dlq.retries", m.get("retries"))):
            key = f"dlq.retries[{i}]"
            r = self.mapping(key, rraw, frozenset({"at", "count"}))
            if "at" not in r:
                self.fail(f"{key}.at", "missing")
            at = self.number(f"{key}.at", r["at"], minimum=0.0)
            retries.append((at, self.integer(f"{key}.count", r.get("count", 1), minimum=1)))
        probes = self.integer("dlq.probes", m.get("probes", 50), minimum=0)
        return DlqPlan(tuple(retries), probes)

    def store(self, raw: object) -> str:
        m = self.mapping("store", raw, frozenset({"url"}))
        url = self.string("store.url", m.get("url", "sqlite://:memory:"))
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            self.fail("store.url", f"must be sqlite://... or postgresql://..., got {url!r}")
        return url

    def invariants(self, raw: object) -> dict[str, Mapping[str, Any]]:
        if raw is None:
            return {name: {} for name in _DEFAULT_INVARIANTS}
        if isinstance(raw, list):
            raw = {str(x): {} for x in raw}
        m = self.mapping("invariants", raw, frozenset(INVARIANTS))
        out: dict[str, Mapping[str, Any]] = {}
        for name, params in m.items():
            if params is None or params is True:
                params = {}
            if params is False:
                continue
            if not isinstance(params, Mapping):
                self.fail(f"invariants.{name}", "must be a mapping of bounds, true or false")
            assert isinstance(params, Mapping)
            if name == "outcome_bounds":
                for bound, value in params.items():
                    if bound not in _OUTCOME_BOUNDS:
                        known = ", ".join(sorted(_OUTCOME_BOUNDS))
                        self.fail(f"invariants.outcome_bounds.{bound}", f"unknown (known: {known})")
                    self.number(f"invariants.outcome_bounds.{bound}", value, minimum=0.0)
            else:
                for bound, value in params.items():
                    if bound not in ("tolerance", "checkpoints", "max_probes", "runs"):
                        self.fail(f"invariants.{name}.{bound}", "unknown bound")
                    self.number(f"invariants.{name}.{bound}", value, minimum=0.0)
            out[name] = dict(params)
        return out

    def comparison(self, raw: object) -> Comparison | None:
        if raw is None:
            return None
        m = self.mapping("comparison", raw, frozenset({"kind", "strategies", "budget", "bucket"}))
        kind = m.get("kind")
        if kind not in ("herd", "replay"):
            self.fail("comparison.kind", f"must be herd or replay, got {kind!r}")
        d = Comparison(kind=str(kind))
        strategies = d.strategies
        if "strategies" in m:
            names = self.items("comparison.strategies", m["strategies"])
            try:
                strategies = tuple(Strategy(str(s)) for s in names)
            except ValueError:
                known = ", ".join(s.value for s in Strategy)
                self.fail("comparison.strategies", f"unknown strategy in {names!r} ({known})")
        budget = d.budget
        if "budget" in m:
            budget = tuple(
                self.boolean(f"comparison.budget[{i}]", b)
                for i, b in enumerate(self.items("comparison.budget", m["budget"]))
            )
        bucket = self.number("comparison.bucket", m.get("bucket", 1.0), positive=True)
        return Comparison(str(kind), strategies, budget, bucket)
