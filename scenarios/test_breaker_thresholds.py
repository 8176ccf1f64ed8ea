"""Breaker thresholds: exact edges, window expiry, recovery, probes, isolation, concurrency."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.chaos.invariants import check_run
from harness.sim import Hooks, simulate
from harness.sim.scenario import find_scenario
from harness.vclock import ManualClock
from reliability.breaker import BreakerPolicy, BreakerRegistry, CircuitBreaker, CircuitOpen, State
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.errors import ErrorCode
from scenarios.conftest import make

POLICY = BreakerPolicy(threshold=5, window=60.0, recovery=30.0, probes=2)
FAIL = ErrorCode.HTTP_5XX


def _state(b: CircuitBreaker) -> State:
    return b.state


def _fail(b: CircuitBreaker, n: int, clock: ManualClock, step: float = 1.0) -> None:
    for _ in range(n):
        b.record(b.acquire(), FAIL)
        clock.advance(step)


def test_nth_failure_opens_and_n_minus_one_does_not() -> None:
    clock = ManualClock()
    b = CircuitBreaker(POLICY, clock, name="t")
    _fail(b, POLICY.threshold - 1, clock)
    assert _state(b) == State.CLOSED
    _fail(b, 1, clock)
    assert _state(b) == State.OPEN
    with pytest.raises(CircuitOpen):
        b.acquire()


def test_failures_that_left_the_window_do_not_count() -> None:
    clock = ManualClock()
    b = CircuitBreaker(POLICY, clock, name="t")
    _fail(b, POLICY.threshold - 1, clock, step=0.0)
    clock.advance(POLICY.window)  # exactly the window: the old failures no longer count
    _fail(b, POLICY.threshold - 1, clock, step=0.0)
    assert _state(b) == State.CLOSED
    clock.advance(POLICY.window - 0.001)
    _fail(b, 1, clock, step=0.0)
    assert _state(b) == State.OPEN


def test_recovery_lets_exactly_the_configured_probes_through() -> None:
    clock = ManualClock()
    b = CircuitBreaker(POLICY, clock, name="t")
    _fail(b, POLICY.threshold, clock, step=0.0)
    clock.advance(POLICY.recovery - 0.001)
    with pytest.raises(CircuitOpen):
        b.acquire()
    clock.advance(0.001)
    probes = [b.acquire() for _ in range(POLICY.probes)]
    assert all(p.probe for p in probes)
    with pytest.raises(CircuitOpen):
        b.acquire()
    b.record(probes[0], None)
    assert _state(b) == State.CLOSED


def test_a_failed_probe_reopens() -> None:
    clock = ManualClock()
    b = CircuitBreaker(POLICY, clock, name="t")
    _fail(b, POLICY.threshold, clock, step=0.0)
    clock.advance(POLICY.recovery)
    b.record(b.acquire(), ErrorCode.TIMEOUT)
    assert _state(b) == State.OPEN


def test_tenants_never_share_a_breaker() -> None:
    clock = ManualClock()
    reg = BreakerRegistry(clock, lambda t: POLICY)
    _fail(reg.get("a"), POLICY.threshold, clock, step=0.0)
    assert _state(reg.get("a")) == State.OPEN
    assert _state(reg.get("b")) == State.CLOSED
    reg.get("b").acquire()


def test_breakers_under_concurrency_match_the_model() -> None:
    """Flapping and dead tenants with concurrent deliveries: every decision checked."""
    run = simulate(find_scenario("breaker-thresholds"))
    (result,) = check_run(run, ["breaker_thresholds"])
    assert result.passed, result.details
    assert run.figures["breaker_opens"] > 10
    assert "opened at exactly the threshold" in result.details
    healthy = [
        e for _, _, e in run.records.events if getattr(e, "tenant_id", "").startswith("healthy")
    ]
    assert healthy
    assert not any(type(e).__name__ == "BreakerChanged" for e in healthy)


def test_the_checker_catches_a_breaker_with_the_wrong_threshold() -> None:
    def off_by_one(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
        wrong = settings.n8n_circuit_breaker_threshold + 1
        return Dispatcher(replace(settings, n8n_circuit_breaker_threshold=wrong), *args, **kwargs)

    scenario = make(
        settings={"N8N_CIRCUIT_BREAKER_THRESHOLD": 3, "N8N_MAX_RETRIES": 6},
        n8n={"faults": {"rules": [{"outages": [{"start": 100, "end": 400, "fault": 500}]}]}},
    )
    assert check_run(simulate(scenario), ["breaker_thresholds"])[0].passed
    run = simulate(scenario, hooks=Hooks(dispatcher=off_by_one))
    (result,) = check_run(run, ["breaker_thresholds"])
    assert not result.passed
    assert result.counterexample is not None
    assert "threshold 3" in result.counterexample.message
