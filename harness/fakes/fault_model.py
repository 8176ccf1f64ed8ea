"""The fault model: a profile of rules (first match wins) and the verdict for one call.

Frozen values only; `harness.fakes.faults.FaultEngine` decides with them and
`harness.fakes.fault_profiles` reads them from YAML/JSON.
"""

from __future__ import annotations

import fnmatch
import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Final, Literal

from harness.errors import InputError

__all__ = [
    "CONNECTION_FAULTS",
    "Decision",
    "FailFirst",
    "FaultAction",
    "FaultProfile",
    "FaultProfileError",
    "FaultRule",
    "Flap",
    "Latency",
    "RateLimit",
    "Scope",
    "Window",
]

CONNECTION_FAULTS: Final = ("hang", "reset", "close", "truncate", "malformed")
"""Faults below HTTP: hold past the client's timeout, TCP reset, close without an answer, a body
cut short of its Content-Length, a complete answer whose JSON is broken."""

Scope = Literal["tenant", "global"]

_NORMAL: Final = NormalDist()


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


def _glob(pattern: str, value: str) -> bool:
    return pattern == "*" or pattern == value or fnmatch.fnmatchcase(value, pattern)
