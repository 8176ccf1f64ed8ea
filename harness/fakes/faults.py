"""Fault injection for the fakes: one model, loaded from YAML/JSON and changeable at run time.

A profile is an ordered list of rules; the first rule whose `path` and `tenant` patterns match a
call decides what happens to it. Time comes from an injected `Clock` and chance from one seeded
`random.Random`, so the same seed and the same calls give the same faults, in-process or served.

Within a rule the stages run in a fixed order: outage windows, flapping, fail-the-first-N, the
token-bucket rate limit, then one random draw over the status/connection mix. Latency applies to
every call the rule matches. Times in a profile are seconds since the engine started (or was
reset) on its clock.

The model lives in `harness.fakes.fault_model` and the reader in `harness.fakes.fault_profiles`;
both are re-exported here, where users import them from.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Final

from harness.fakes.fault_model import (
    CONNECTION_FAULTS,
    Decision,
    FailFirst,
    FaultAction,
    FaultProfile,
    FaultProfileError,
    FaultRule,
    Flap,
    Latency,
    RateLimit,
    Window,
)
from harness.fakes.fault_profiles import load_profile, parse_profile
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

_PASS: Final = Decision()
_MAX_KEPT_RULES: Final = 4096


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
