"""Validation of scenario files: every error names the file and the key path.

`Parser(source)` checks one section at a time and builds the frozen shapes of
`harness.sim.scenario_model`; the keys each section allows come from
`harness.sim.scenario_spec`, the table the published JSON Schema is made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from harness.fakes.faults import FaultProfile, FaultProfileError, parse_profile
from harness.inputs import Reader
from harness.sim.scenario_model import (
    DEFAULT_INVARIANTS,
    EVENT_TYPES,
    INVARIANT_BOUNDS,
    INVARIANTS,
    OUTCOME_BOUNDS,
    Burst,
    Comparison,
    Crash,
    Cron,
    DlqPlan,
    ScenarioError,
    StripeFaults,
    Traffic,
)
from harness.sim.scenario_spec import MAX_INSTANCES, SHAPES, keys
from reliability.backoff import Strategy
from reliability.config import ConfigError, Settings, TenantConfig, load_settings, parse_tenants

__all__ = ["DEFAULT_SETTINGS", "Parser", "parse_instances"]

DEFAULT_SETTINGS: Final = {
    "N8N_WEBHOOK_URL": "http://fake-n8n.invalid/webhook",
    "N8N_API_KEY_HEADER": "X-N8N-Webhook-Key",
    "N8N_API_KEY": "local-test-webhook-key",
}
"""The in-process fake n8n's address and the header-auth credential its workflows expect."""


class Parser(Reader):
    """The scenario's sections, checked one at a time into `harness.sim.scenario_model`."""

    def __init__(self, source: str) -> None:
        super().__init__(source, ScenarioError)

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
        environ = {**DEFAULT_SETTINGS, **overrides}
        try:
            return load_settings(environ, strict_environ=True)
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
        allowed = keys("tenant_group")
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
        m = self.mapping("traffic", raw, keys("traffic"))
        events = self.integer("traffic.events", m.get("events", 100), minimum=0)
        duration = self.number("traffic.duration", m.get("duration", 3600.0), positive=True)
        start = self.number("traffic.start", m.get("start", 0.0), minimum=0.0)
        shape = m.get("shape", "uniform")
        if shape not in SHAPES:
            self.fail("traffic.shape", f"must be uniform, poisson or diurnal, got {shape!r}")
        mix = Traffic().mix
        if "mix" in m:
            mraw = m["mix"]
            if not isinstance(mraw, Mapping) or not mraw:
                self.fail("traffic.mix", "must map event types to weights")
            assert isinstance(mraw, Mapping)
            pairs = []
            for etype, w in mraw.items():
                if etype not in EVENT_TYPES:
                    self.fail(f"traffic.mix.{etype}", f"unknown event type (known: {EVENT_TYPES})")
                pairs.append((str(etype), self.number(f"traffic.mix.{etype}", w, positive=True)))
            mix = tuple(pairs)
        bursts = []
        for i, braw in enumerate(self.items("traffic.bursts", m.get("bursts"))):
            key = f"traffic.bursts[{i}]"
            b = self.mapping(key, braw, keys("burst"))
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

    def n8n(self, raw: object) -> tuple[FaultProfile, bool]:
        """The fault profile, and whether the workflows' Remove Duplicates nodes run."""
        m = self.mapping("n8n", raw, keys("n8n"))
        dedupe = self.boolean("n8n.dedupe", m.get("dedupe", False))
        try:
            profile = parse_profile(m.get("faults") or {}, source=f"{self.source}: n8n.faults")
        except FaultProfileError as exc:
            raise ScenarioError(self.source, f"n8n.faults.{exc.key}", exc.problem) from None
        return profile, dedupe

    def stripe(self, raw: object) -> StripeFaults:
        d = StripeFaults()
        m = self.mapping("stripe", raw, keys("stripe"))

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

    def crashes(self, raw: object, instances: int = 1) -> tuple[Crash, ...]:
        """Crashes in order and not overlapping, per instance (instances crash independently)."""
        out: list[Crash] = []
        last: dict[int, Crash] = {}
        for i, craw in enumerate(self.items("crashes", raw)):
            key = f"crashes[{i}]"
            c = self.mapping(key, craw, keys("crash"))
            if "at" not in c or "restart" not in c:
                self.fail(key, "needs `at` and `restart` (simulated seconds)")
            at = self.number(f"{key}.at", c["at"], minimum=0.0)
            restart = self.number(f"{key}.restart", c["restart"], minimum=0.0)
            instance = self.integer(f"{key}.instance", c.get("instance", 1), minimum=1)
            if instance > instances:
                self.fail(f"{key}.instance", f"{instance} is not one of the {instances} instances")
            if restart <= at:
                self.fail(f"{key}.restart", f"{restart:g} is not after the crash at {at:g}")
            before = last.get(instance)
            if before is not None and at < before.restart:
                self.fail(f"{key}.at", "an instance's crashes must be in order and not overlap")
            last[instance] = crash = Crash(at, restart, instance)
            out.append(crash)
        return tuple(out)

    def cron(self, raw: object) -> Cron:
        m = self.mapping("cron", raw, keys("cron"))
        return Cron(
            interval=self.number("cron.interval", m.get("interval", 60.0), positive=True),
            batch=self.integer("cron.batch", m.get("batch", 100), minimum=1),
            budget=self.number("cron.budget", m.get("budget", 10.0), positive=True),
        )

    def dlq(self, raw: object) -> DlqPlan:
        m = self.mapping("dlq", raw, keys("dlq"))
        retries = []
        for i, rraw in enumerate(self.items("dlq.retries", m.get("retries"))):
            key = f"dlq.retries[{i}]"
            r = self.mapping(key, rraw, keys("dlq_retry"))
            if "at" not in r:
                self.fail(f"{key}.at", "missing")
            at = self.number(f"{key}.at", r["at"], minimum=0.0)
            retries.append((at, self.integer(f"{key}.count", r.get("count", 1), minimum=1)))
        probes = self.integer("dlq.probes", m.get("probes", 50), minimum=0)
        return DlqPlan(tuple(retries), probes)

    def store(self, raw: object) -> str:
        m = self.mapping("store", raw, keys("store"))
        url = self.string("store.url", m.get("url", "sqlite://:memory:"))
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            self.fail("store.url", f"must be sqlite://... or postgresql://..., got {url!r}")
        return url

    def invariants(self, raw: object) -> dict[str, Mapping[str, Any]]:
        return parse_invariants(self, raw)

    def comparison(self, raw: object) -> Comparison | None:
        if raw is None:
            return None
        m = self.mapping("comparison", raw, keys("comparison"))
        kind = m.get("kind")
        if kind not in ("herd", "replay", "aws-occ", "dedupe"):
            self.fail("comparison.kind", f"must be herd, replay, aws-occ or dedupe, got {kind!r}")
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
        clients = d.clients
        if "clients" in m:
            clients = tuple(
                self.integer(f"comparison.clients[{i}]", n, minimum=1)
                for i, n in enumerate(self.items("comparison.clients", m["clients"]))
            )
        runs = self.integer("comparison.runs", m.get("runs", d.runs), minimum=1)
        return Comparison(str(kind), strategies, budget, bucket, clients, runs)


def parse_instances(p: Reader, raw: object) -> int:
    """How many service instances share the store (1 .. `MAX_INSTANCES`)."""
    n = p.integer("instances", raw, minimum=1)
    if n > MAX_INSTANCES:
        p.fail("instances", f"must be at most {MAX_INSTANCES}, got {n}")
    return n


def parse_invariants(p: Reader, raw: object) -> dict[str, Mapping[str, Any]]:
    """The invariants to check, with their bounds: the defaults, with what the file sets
    merged over them (`name: false` drops one); `only:` or a plain list replaces the
    defaults, `disable:` drops some."""
    if isinstance(raw, list):
        raw = {"only": raw}
    m = p.mapping("invariants", raw, frozenset({"only", "disable", *INVARIANTS}))
    if "only" in m and "disable" in m:
        p.fail("invariants", "give `only` or `disable`, not both")
    chosen = list(DEFAULT_INVARIANTS)
    if "only" in m:
        chosen = _names(p, "invariants.only", m["only"])
    elif "disable" in m:
        dropped = _names(p, "invariants.disable", m["disable"])
        chosen = [n for n in chosen if n not in dropped]
    out: dict[str, Mapping[str, Any]] = {name: {} for name in chosen}
    for name in INVARIANTS:
        if name not in m:
            continue
        params = m[name]
        if params is False:
            out.pop(name, None)
            continue
        if "only" in m and name not in out:
            p.fail(f"invariants.{name}", "is not in `only`; add it there")
        if "disable" in m and name not in out:
            p.fail(f"invariants.{name}", "is in `disable`; drop one of the two")
        out[name] = _bounds(p, name, {} if params is None or params is True else params)
    return {name: out[name] for name in INVARIANTS if name in out}


def _names(p: Reader, key: str, raw: object) -> list[str]:
    names = [str(x) for x in p.items(key, raw)]
    for i, name in enumerate(names):
        if name not in INVARIANTS:
            p.fail(f"{key}[{i}]", f"unknown invariant {name!r} (known: {', '.join(INVARIANTS)})")
    return names


def _bounds(p: Reader, name: str, params: object) -> dict[str, Any]:
    key = f"invariants.{name}"
    if not isinstance(params, Mapping):
        p.fail(key, "must be a mapping of bounds, true or false")
    assert isinstance(params, Mapping)
    known = OUTCOME_BOUNDS if name == "outcome_bounds" else INVARIANT_BOUNDS.get(name, {})
    for bound, value in params.items():
        if bound not in known:
            listed = ", ".join(sorted(known)) or "none"
            p.fail(f"{key}.{bound}", f"unknown bound (known: {listed})")
        p.number(f"{key}.{bound}", value, minimum=0.0)
    return dict(params)
