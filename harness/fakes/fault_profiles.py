"""Fault profiles from YAML or JSON: every refusal names the file (or source) and the key.

Files are read by the harness's one reader (`harness.inputs.read_document`: UTF-8, no repeated
keys, bounded nesting); `PUT /__faults` bodies are JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TypeGuard

from harness.fakes.fault_model import (
    CONNECTION_FAULTS,
    FailFirst,
    FaultAction,
    FaultProfile,
    FaultProfileError,
    FaultRule,
    Flap,
    Latency,
    RateLimit,
    Scope,
    Window,
)
from harness.inputs import read_document

__all__ = ["load_profile", "parse_profile"]

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
    data = read_document(path, source, FaultProfileError)
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
