"""backoff_bounds: every retry is one the retry decision could have made.

For each `Retrying` event the checker asks `reliability.decision.decide` itself, with the same
outcome, attempt and previous delay, once with a random source stuck at 0 and once just below
1: the recorded bounds must be the decision's, and the recorded delay must lie between the two
extreme decisions. On top, the invariants the design states directly: no delay above the max
delay, a Retry-After honoured up to the max delay, no attempt before its delay ran out, and no
more than max_retries + 1 attempts per delivery.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from harness.chaos.invariants._base import EPS, Findings, Violation
from harness.sim import SimRun
from reliability.config import Settings
from reliability.decision import Answered, Retry, RetryRules, decide, retry_rules
from reliability.events import Attempted, Retrying

__all__ = ["check_backoff_bounds"]

_ATTEMPT_OR_RETRY: Final = (Attempted, Retrying)


class _Edge(random.Random):
    """A random source stuck at one end of [0, 1): the lowest or highest draw there is."""

    def __init__(self, u: float) -> None:
        super().__init__(0)
        self._u = u

    def random(self) -> float:
        return self._u


_LOWEST: Final = _Edge(0.0)
_HIGHEST: Final = _Edge(math.nextafter(1.0, 0.0))


class _Rules:
    """Each tenant's retry rules, made once per tenant rather than once per event."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache: dict[str, RetryRules] = {}

    def of(self, tenant_id: str) -> RetryRules:
        rules = self._cache.get(tenant_id)
        if rules is None:
            rules = self._cache[tenant_id] = retry_rules(self._settings, tenant_id)
        return rules


def check_backoff_bounds(run: SimRun, params: Mapping[str, Any]) -> Findings:
    r = run.records
    tol = float(params.get("tolerance", 1e-9))
    out = Findings()
    rules = _Rules(r.settings)
    by_row: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for t, _, ev in r.events:
        if isinstance(ev, _ATTEMPT_OR_RETRY):
            by_row[ev.outbox_id].append((t, ev))
    for t, _, ev in r.events:
        if not isinstance(ev, Retrying):
            continue
        out.checked += 1
        bad = _judge(ev, rules.of(ev.tenant_id), tol)
        if bad is None:
            nxt = _next_attempt(by_row[ev.outbox_id], t)
            if nxt is not None and nxt < t + ev.delay - EPS:
                bad = f"retried at t={nxt:.6f}, before its delay of {ev.delay} from t={t:.6f}"
        if bad is not None:
            out.fail(
                Violation(
                    f"attempt {ev.attempt}: {bad}",
                    ev.tenant_id,
                    None,
                    ev.outbox_id,
                    {"retry_scheduled": t},
                    (ev.outbox_id,),
                )
            )
    _count_attempts(by_row, rules, out)
    return out


def _judge(ev: Retrying, rules: RetryRules, tol: float) -> str | None:
    """What is wrong with one scheduled retry, or None."""
    outcome = Answered(None, ev.cause, ev.retry_after)
    low = decide(outcome, ev.attempt - 1, rules, True, ev.previous, _LOWEST)
    high = decide(outcome, ev.attempt - 1, rules, True, ev.previous, _HIGHEST)
    if not isinstance(low, Retry) or not isinstance(high, Retry):
        return f"the retry decision would not have retried: {low}"
    cap, delay, ra = rules.backoff.cap, ev.delay, ev.retry_after
    if delay > cap + tol:
        return f"delay {delay} exceeds the max delay {cap}"
    if any(abs(a - b) > tol for a, b in zip(ev.bounds, low.bounds, strict=True)):
        return f"bounds {ev.bounds} differ from the strategy's {low.bounds}"
    if not low.delay - tol <= delay <= high.delay + tol:
        honoured = "" if ra is None else f" with Retry-After {ra}"
        return (
            f"delay {delay} outside what the decision allows{honoured}: "
            f"[{low.delay}, {high.delay}] (strategy bounds {low.bounds})"
        )
    if ra is not None and delay < min(ra, cap) - tol:
        return f"Retry-After {ra} not honoured up to the cap {cap}: delay {delay}"
    return None


def _count_attempts(
    by_row: Mapping[str, Sequence[tuple[float, Any]]], rules: _Rules, out: Findings
) -> None:
    for outbox_id, items in by_row.items():
        attempts = [ev for _, ev in items if isinstance(ev, Attempted)]
        if not attempts:
            continue
        out.checked += 1
        limit = rules.of(attempts[0].tenant_id).max_retries + 1
        if len(attempts) > limit:
            out.fail(
                Violation(
                    f"{len(attempts)} attempts, more than max_retries + 1 = {limit}",
                    attempts[0].tenant_id,
                    None,
                    outbox_id,
                    needles=(outbox_id,),
                )
            )


def _next_attempt(items: Sequence[tuple[float, Any]], after: float) -> float | None:
    seen = False
    for t, ev in items:
        if t < after:
            continue
        if isinstance(ev, Retrying) and t == after and not seen:
            seen = True
            continue
        if isinstance(ev, Attempted) and seen:
            return float(t - ev.duration)
    return None
