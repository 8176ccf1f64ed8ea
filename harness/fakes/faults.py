"""Fault injection for the fakes: one model, loaded from YAML/JSON and changeable at run time.

A profile is an ordered list of rules; the first rule whose `path` and `tenant` patterns match a
call decides what happens to it. Time comes from an injected `Clock` and chance from one seeded
`random.Random`, so the same seed and the same calls give the same faults, in-process or served.

Within a rule the stages run in a fixed order: outage windows, flapping, fail-the-first-N, the
token-bucket rate limit, then one random draw over the status/connection mix. Latency applies to
every call the rule matches. Times in a profile are seconds since the engine started (or was
reset) on its clock.
"""

from __future__ import annotations

import fnmatch
import json
import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any, Final, Literal, TypeGuard

import yaml

from harness.errors import InputError
from reliability.clock import Clock

__all__ = [
    "CONNECTION_FAULTS",
    "Decision",
    "FailFirst",
    "FaultAction",
    "FaultEngine",
    "FaultProfile",
    "FaultProfileError",
    "FaultRule",
    "Flap",
    "Latency",
    "RateLimit",
    "Window",
    "load_profile",
    "parse_profile",
]

CONNECTION_FAULTS: Final = ("hang", "reset", "close", "truncate", "malformed")
"""Faults below HTTP: hold past the client's timeout, TCP reset, close without an answer, a body
cut short of its Content-Length, a complete answer whose JSON is broken."""

Scope = Literal["tenant", "global"]


class FaultProfileError(InputError):
    """A fault profile that cannot be used; the message names the file (or source) and the key."""


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What is done to one call: answer with an HTTP status, or one of `CONNECTION_FAULTS`."""

    kind: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def label(self) -> str:
        """`status:503`, `reset`, ...: the name the journal records."""
        return f"status:{self.status}" if self.kind == "status" else self.kind

    def to_json(self) -> int | str:
        return self.status if self.kind == "status" and self.status is not None else self.kind


@dataclass(frozen=True, slots=True)
class Latency:
    """Delay before answering: `fixed`, `uniform` (low..high), `lognormal` (median, sigma, max)."""

    distribution: Literal["fixed", "uniform", "lognormal"]
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0
    max: float = math.inf

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds; always draws exactly one number from `rng`."""
        u = rng.random()
        if self.distribution == "fixed":
            return self.value
        if self.distribution == "uniform":
            return self.low + (self.high - self.low) * u
        # Inverse-CDF keeps the draw count at one: median * exp(sigma * z), z ~ N(0, 1).
        z = _NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        return min(self.median * math.exp(self.sigma * z), self.max)

    def to_json(self) -> dict[str, Any]:
        if self.distribution == "fixed":
            return {"fixed": self.value}
        if self.distribution == "uniform":
            return {"uniform": {"min": self.low, "max": self.high}}
        out: dict[str, Any] = {"median": self.median, "sigma": self.sigma}
        if math.isfinite(self.max):
            out["max"] = self.max
        return {"lognormal": out}


@dataclass(frozen=True, slots=True)
class Window:
    """A scheduled outage: from `start` to `end` seconds (half-open) every call gets `fault`."""

    start: float
    end: float
    fault: FaultAction


@dataclass(frozen=True, slots=True)
class Flap:
    """Up for `up` seconds, then down (every call gets `fault`) for `down`, repeating."""

    up: float
    down: float
    fault: FaultAction
    offset: float = 0.0

    def is_down(self, t: float) -> bool:
        return (t + self.offset) % (self.up + self.down) >= self.up


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket (`rate`/s, `burst` deep); an empty bucket answers 429 with Retry-After."""

    rate: float
    burst: int
    scope: Scope = "tenant"


@dataclass(frozen=True, slots=True)
class FailFirst:
    """The first `count` calls get `fault`, then calls pass (per path and tenant, or global)."""

    count: int
    fault: FaultAction
    scope: Scope = "tenant"


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Faults for the calls whose path and tenant match the glob patterns."""

    path: str = "*"
    tenant: str = "*"
    statuses: tuple[tuple[int, float], ...] = ()
    connection: tuple[tuple[str, float], ...] = ()
    retry_after: float = 1.0
    hang_for: float = 600.0
    run_before_fault: bool = True
    latency: Latency | None = None
    outages: tuple[Window, ...] = ()
    flap: Flap | None = None
    rate_limit: RateLimit | None = None
    fail_first: FailFirst | None = None

    def matches(self, path: str, tenant: str) -> bool:
        return _glob(self.path, path) and _glob(self.tenant, tenant)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "tenant": self.tenant}
        if self.statuses:
            out["status"] = {str(code): p for code, p in self.statuses}
        out.update(dict(self.connection))
        out["retry_after"] = self.retry_after
        out["hang_for"] = self.hang_for
        out["run_before_fault"] = self.run_before_fault
        if self.latency is not None:
            out["latency"] = self.latency.to_json()
        if self.outages:
            out["outages"] = [
                {"start": w.start, "end": w.end, "fault": w.fault.to_json()} for w in self.outages
            ]
        if self.flap is not None:
            f = self.flap
            out["flap"] = {"up": f.up, "down": f.down, "offset": f.offset}
            out["flap"]["fault"] = f.fault.to_json()
        if self.rate_limit is not None:
            r = self.rate_limit
            out["rate_limit"] = {"rate": r.rate, "burst": r.burst, "scope": r.scope}
        if self.fail_first is not None:
            ff = self.fail_first
            out["fail_first"] = {"count": ff.count, "fault": ff.fault.to_json(), "scope": ff.scope}
        return out


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """An ordered list of rules (first match wins) and an optional seed."""

    rules: tuple[FaultRule, ...] = ()
    seed: int | None = None

    def rule_for(self, path: str, tenant: str) -> tuple[int, FaultRule] | None:
        for index, rule in enumerate(self.rules):
            if rule.matches(path, tenant):
                return index, rule
        return None

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form; `parse_profile(p.to_json()) == p`."""
        out: dict[str, Any] = {"rules": [r.to_json() for r in self.rules]}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's verdict for one call."""

    action: FaultAction | None = None
    latency: float = 0.0
    reason: str | None = None
    rule: int | None = None
    hang_for: float = 600.0
    runs_workflow: bool = True
    """False when the fault stands in front of n8n (a status, or `run_before_fault: false`)."""

    @property
    def label(self) -> str | None:
        return None if self.action is None else self.action.label


_PASS: Final = Decision()
_MAX_KEPT_RULES: Final = 4096
_NORMAL: Final = NormalDist()


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class _State:
    counts: dict[tuple[int, str, str], int] = field(default_factory=dict)
    buckets: dict[tuple[int, str, str], _Bucket] = field(default_factory=dict)
    rules: dict[tuple[str, str], tuple[int, FaultRule] | None] = field(default_factory=dict)
    """The profile's `rule_for` answers, kept: a profile is frozen, and calls repeat paths."""


class FaultEngine:
    """Decides faults per call from a `FaultProfile`, a `Clock` and a seeded `random.Random`.

    Thread-safe: a served fake decides on its server thread while tests reload the profile.
    """

    def __init__(
        self,
        profile: FaultProfile | None = None,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        seed: int = 0,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._profile = profile if profile is not None else FaultProfile()
        start_seed = self._profile.seed if self._profile.seed is not None else seed
        self._rng = rng if rng is not None else random.Random(start_seed)
        if rng is not None and self._profile.seed is not None:
            self._rng.seed(self._profile.seed)
        self._initial_rng = self._rng.getstate()
        self._initial_profile = self._profile
        self._epoch = clock.monotonic()
        self._state = _State()

    @property
    def profile(self) -> FaultProfile:
        return self._profile

    @property
    def clock(self) -> Clock:
        return self._clock

    def elapsed(self) -> float:
        """Seconds since start or the last reset: the time outage windows and flaps refer to."""
        return self._clock.monotonic() - self._epoch

    def load(self, profile: FaultProfile) -> None:
        """Replace the profile at run time; counters and buckets restart, a profile seed reseeds."""
        with self._lock:
            self._profile = profile
            self._state = _State()
            if profile.seed is not None:
                self._rng.seed(profile.seed)

    def reset(self) -> None:
        """Back to the start: the first profile, the first RNG state, time zero, no counters."""
        with self._lock:
            self._profile = self._initial_profile
            self._rng.setstate(self._initial_rng)
            self._epoch = self._clock.monotonic()
            self._state = _State()

    def decide(self, path: str, tenant: str) -> Decision:
        """The fault (or none) and latency for one call to workflow `path` by `tenant`."""
        with self._lock:
            rules = self._state.rules
            try:
                found = rules[path, tenant]
            except KeyError:
                if len(rules) >= _MAX_KEPT_RULES:
                    rules.clear()
                found = rules[path, tenant] = self._profile.rule_for(path, tenant)
            if found is None:
                return _PASS
            index, rule = found
            t = self._clock.monotonic() - self._epoch
            # Draw the same numbers whatever the time-based stages decide, so one outage
            # window does not shift every later random fault.
            u = self._rng.random() if rule.statuses or rule.connection else 1.0
            delay = rule.latency.sample(self._rng) if rule.latency is not None else 0.0
            action, reason = self._stage(index, rule, path, tenant, t, u)
        if action is None:
            return Decision(latency=delay, rule=index, hang_for=rule.hang_for)
        in_front = action.kind == "status" or not rule.run_before_fault
        return Decision(action, delay, reason, index, rule.hang_for, runs_workflow=not in_front)

    def _stage(
        self, index: int, rule: FaultRule, path: str, tenant: str, t: float, u: float
    ) -> tuple[FaultAction | None, str | None]:
        for window in rule.outages:
            if window.start <= t < window.end:
                return window.fault, "outage"
        if rule.flap is not None and rule.flap.is_down(t):
            return rule.flap.fault, "flap"
        ff = rule.fail_first
        if ff is not None:
            key = (index, path, tenant) if ff.scope == "tenant" else (index, "", "")
            seen = self._state.counts.get(key, 0)
            self._state.counts[key] = seen + 1
            if seen < ff.count:
                return ff.fault, "fail_first"
        limit = rule.rate_limit
        if limit is not None:
            wait = self._take_token(index, limit, path, tenant, t)
            if wait > 0:
                return FaultAction("status", 429, wait), "rate_limit"
        acc = 0.0
        for code, p in rule.statuses:
            acc += p
            if u < acc:
                return FaultAction("status", code, rule.retry_after), "random"
        for kind, p in rule.connection:
            acc += p
            if u < acc:
                return FaultAction(kind), "random"
        return None, None

    def _take_token(self, index: int, limit: RateLimit, path: str, tenant: str, t: float) -> float:
        key = (index, path, tenant) if limit.scope == "tenant" else (index, "", "")
        bucket = self._state.buckets.get(key)
        if bucket is None:
            bucket = self._state.buckets[key] = _Bucket(float(limit.burst), t)
        bucket.tokens = min(float(limit.burst), bucket.tokens + (t - bucket.at) * limit.rate)
        bucket.at = t
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.rate


# --- parsing -------------------------------------------------------------------------------

_TOP_KEYS: Final = frozenset({"seed", "rules"})
_RULE_KEYS: Final = frozenset(
    {
        "path",
        "tenant",
        "status",
        "retry_after",
        "hang_for",
        "run_before_fault",
        "latency",
        "outages",
        "flap",
        "rate_limit",
        "fail_first",
        *CONNECTION_FAULTS,
    }
)


def load_profile(path: str | Path) -> FaultProfile:
    """Read a profile from a YAML or JSON file; errors name the file and the key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FaultProfileError(source, "(file)", f"cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FaultProfileError(source, "(file)", f"not valid YAML/JSON: {exc}") from exc
    return parse_profile({} if data is None else data, source=source)


def parse_profile(data: object, *, source: str = "<profile>") -> FaultProfile:
    """Validate a profile given as a mapping (parsed YAML/JSON) or a JSON string."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise FaultProfileError(source, "(body)", f"not valid JSON: {exc}") from exc
    top = _mapping(source, "(top level)", data, _TOP_KEYS)
    seed = top.get("seed")
    if seed is not None and not _is_int(seed):
        raise FaultProfileError(source, "seed", f"must be an integer, got {seed!r}")
    raw_rules = top.get("rules", [])
    if not isinstance(raw_rules, list):
        raise FaultProfileError(source, "rules", "must be a list of rules")
    rules = tuple(_rule(source, f"rules[{i}]", raw) for i, raw in enumerate(raw_rules))
    return FaultProfile(rules=rules, seed=seed)


def _rule(source: str, key: str, raw: object) -> FaultRule:
    m = _mapping(source, key, raw, _RULE_KEYS)
    rule = FaultRule(
        path=_str(source, f"{key}.path", m.get("path", "*")),
        tenant=_str(source, f"{key}.tenant", m.get("tenant", "*")),
    )
    statuses: list[tuple[int, float]] = []
    raw_status = m.get("status", {})
    if not isinstance(raw_status, Mapping):
        raise FaultProfileError(source, f"{key}.status", "must map status codes to probabilities")
    for code_raw, p_raw in raw_status.items():
        code = _status_code(source, f"{key}.status.{code_raw}", code_raw)
        statuses.append((code, _probability(source, f"{key}.status.{code_raw}", p_raw)))
    connection = [
        (kind, _probability(source, f"{key}.{kind}", m[kind]))
        for kind in CONNECTION_FAULTS
        if kind in m
    ]
    total = sum(p for _, p in statuses) + sum(p for _, p in connection)
    if total > 1.0 + 1e-9:
        raise FaultProfileError(
            source, key, f"probabilities add up to {total:g}, above 1 (status + connection faults)"
        )
    retry_after = _nonneg(source, f"{key}.retry_after", m.get("retry_after", 1.0))
    run_before = m.get("run_before_fault", True)
    if not isinstance(run_before, bool):
        raise FaultProfileError(source, f"{key}.run_before_fault", "must be true or false")
    rule = replace(
        rule,
        statuses=tuple(statuses),
        connection=tuple(connection),
        retry_after=retry_after,
        hang_for=_positive(source, f"{key}.hang_for", m.get("hang_for", 600.0)),
        run_before_fault=run_before,
    )
    if "latency" in m:
        rule = replace(rule, latency=_latency(source, f"{key}.latency", m["latency"]))
    if "outages" in m:
        raw_outages = m["outages"]
        if not isinstance(raw_outages, list):
            raise FaultProfileError(source, f"{key}.outages", "must be a list of windows")
        outages = tuple(
            _window(source, f"{key}.outages[{i}]", w, retry_after)
            for i, w in enumerate(raw_outages)
        )
        rule = replace(rule, outages=outages)
    if "flap" in m:
        rule = replace(rule, flap=_flap(source, f"{key}.flap", m["flap"], retry_after))
    if "rate_limit" in m:
        rule = replace(rule, rate_limit=_rate_limit(source, f"{key}.rate_limit", m["rate_limit"]))
    if "fail_first" in m:
        ff = _fail_first(source, f"{key}.fail_first", m["fail_first"], retry_after)
        rule = replace(rule, fail_first=ff)
    return rule


def _latency(source: str, key: str, raw: object) -> Latency:
    m = _mapping(source, key, raw, frozenset({"fixed", "uniform", "lognormal"}))
    if len(m) != 1:
        raise FaultProfileError(source, key, "give exactly one of fixed, uniform, lognormal")
    (kind, spec), *_ = m.items()
    if kind == "fixed":
        return Latency("fixed", value=_nonneg(source, f"{key}.fixed", spec))
    if kind == "uniform":
        u = _mapping(source, f"{key}.uniform", spec, frozenset({"min", "max"}), required=True)
        low = _nonneg(source, f"{key}.uniform.min", u["min"])
        high = _nonneg(source, f"{key}.uniform.max", u["max"])
        if high < low:
            raise FaultProfileError(source, f"{key}.uniform.max", f"{high:g} is below min {low:g}")
        return Latency("uniform", low=low, high=high)
    ln = _mapping(
        source, f"{key}.lognormal", spec, frozenset({"median", "sigma", "max"}), required=False
    )
    for needed in ("median", "sigma"):
        if needed not in ln:
            raise FaultProfileError(source, f"{key}.lognormal.{needed}", "missing")
    cap = _nonneg(source, f"{key}.lognormal.max", ln["max"]) if "max" in ln else math.inf
    return Latency(
        "lognormal",
        median=_nonneg(source, f"{key}.lognormal.median", ln["median"]),
        sigma=_nonneg(source, f"{key}.lognormal.sigma", ln["sigma"]),
        max=cap,
    )


def _window(source: str, key: str, raw: object, retry_after: float) -> Window:
    m = _mapping(source, key, raw, frozenset({"start", "end", "fault"}))
    for needed in ("start", "end"):
        if needed not in m:
            raise FaultProfileError(source, f"{key}.{needed}", "missing")
    start = _nonneg(source, f"{key}.start", m["start"])
    end = _nonneg(source, f"{key}.end", m["end"])
    if end <= start:
        problem = f"outage end {end:g} is not after start {start:g}"
        raise FaultProfileError(source, f"{key}.end", problem)
    return Window(start, end, _action(source, f"{key}.fault", m.get("fault", 503), retry_after))


def _flap(source: str, key: str, raw: object, retry_after: float) -> Flap:
    m = _mapping(source, key, raw, frozenset({"up", "down", "offset", "fault"}))
    for needed in ("up", "down"):
        if needed not in m:
            raise FaultProfileError(source, f"{key}.{needed}", "missing")
    return Flap(
        up=_positive(source, f"{key}.up", m["up"]),
        down=_positive(source, f"{key}.down", m["down"]),
        offset=_nonneg(source, f"{key}.offset", m.get("offset", 0.0)),
        fault=_action(source, f"{key}.fault", m.get("fault", 503), retry_after),
    )


def _rate_limit(source: str, key: str, raw: object) -> RateLimit:
    m = _mapping(source, key, raw, frozenset({"rate", "burst", "scope"}))
    if "rate" not in m:
        raise FaultProfileError(source, f"{key}.rate", "missing")
    rate = _positive(source, f"{key}.rate", m["rate"])
    burst = m.get("burst", 1)
    if not _is_int(burst) or burst < 1:
        raise FaultProfileError(source, f"{key}.burst", f"must be an integer >= 1, got {burst!r}")
    return RateLimit(rate, burst, _scope(source, f"{key}.scope", m.get("scope", "tenant")))


def _fail_first(source: str, key: str, raw: object, retry_after: float) -> FailFirst:
    if _is_int(raw):
        raw = {"count": raw}
    m = _mapping(source, key, raw, frozenset({"count", "fault", "scope"}))
    count = m.get("count")
    if not _is_int(count) or count < 0:
        raise FaultProfileError(source, f"{key}.count", f"must be an integer >= 0, got {count!r}")
    return FailFirst(
        count=count,
        fault=_action(source, f"{key}.fault", m.get("fault", 500), retry_after),
        scope=_scope(source, f"{key}.scope", m.get("scope", "tenant")),
    )


def _action(source: str, key: str, raw: object, retry_after: float) -> FaultAction:
    if isinstance(raw, str) and raw in CONNECTION_FAULTS:
        return FaultAction(raw)
    code = _status_code(source, key, raw)
    return FaultAction("status", code, retry_after)


def _status_code(source: str, key: str, raw: object) -> int:
    code: object = raw
    if isinstance(raw, str) and raw.isdigit():
        code = int(raw)
    if not _is_int(code) or not 400 <= code <= 599:
        choices = ", ".join(CONNECTION_FAULTS)
        raise FaultProfileError(
            source, key, f"{raw!r} is not an HTTP error status (400-599) or one of {choices}"
        )
    return code


def _scope(source: str, key: str, raw: object) -> Scope:
    if raw == "tenant":
        return "tenant"
    if raw == "global":
        return "global"
    raise FaultProfileError(source, key, f"must be 'tenant' or 'global', got {raw!r}")


def _mapping(
    source: str, key: str, raw: object, allowed: frozenset[str], *, required: bool = False
) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise FaultProfileError(source, key, f"must be a mapping, got {type(raw).__name__}")
    for name in raw:
        if str(name) not in allowed:
            known = ", ".join(sorted(allowed))
            raise FaultProfileError(source, f"{key}.{name}", f"unknown key (known: {known})")
    if required:
        for name in allowed:
            if name not in raw:
                raise FaultProfileError(source, f"{key}.{name}", "missing")
    return {str(k): v for k, v in raw.items()}


def _str(source: str, key: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise FaultProfileError(source, key, f"must be a non-empty string, got {raw!r}")
    return raw


def _number(source: str, key: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise FaultProfileError(source, key, f"must be a number, got {raw!r}")
    return float(raw)


def _nonneg(source: str, key: str, raw: object) -> float:
    value = _number(source, key, raw)
    if value < 0:
        raise FaultProfileError(source, key, f"negative value {value:g}")
    return value


def _positive(source: str, key: str, raw: object) -> float:
    value = _number(source, key, raw)
    if value <= 0:
        raise FaultProfileError(source, key, f"must be above 0, got {value:g}")
    return value


def _probability(source: str, key: str, raw: object) -> float:
    value = _number(source, key, raw)
    if not 0.0 <= value <= 1.0:
        raise FaultProfileError(source, key, f"probability {value:g} is outside 0..1")
    return value


def _is_int(raw: object) -> TypeGuard[int]:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _glob(pattern: str, value: str) -> bool:
    return pattern == "*" or pattern == value or fnmatch.fnmatchcase(value, pattern)
