"""Jitter bounds: every strategy, every attempt, the distribution, and the run-time checker."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.chaos.invariants import check_run
from harness.sim import Hooks, simulate
from reliability.backoff import Strategy, backoff
from reliability.dispatch import Dispatcher
from scenarios.conftest import make


@given(
    strategy=st.sampled_from(list(Strategy)),
    base=st.floats(0.001, 10.0),
    factor=st.floats(1.0, 1000.0),
    jitter=st.floats(0.0, 1.0),
    attempt=st.integers(0, 64),
    seed=st.integers(0, 2**32),
    previous=st.none() | st.floats(0.001, 1000.0),
)
def test_every_delay_lies_in_its_bounds(
    strategy: Strategy,
    base: float,
    factor: float,
    jitter: float,
    attempt: int,
    seed: int,
    previous: float | None,
) -> None:
    b = backoff(strategy, base=base, cap=base * factor, jitter_factor=jitter)
    low, high = b.bounds(attempt, previous)
    delay = b.delay(attempt, random.Random(seed), previous)
    assert 0.0 <= low <= delay <= high <= b.cap
    if strategy is Strategy.NONE:
        assert delay == min(b.cap, base * 2.0**attempt)


def _ks_uniform(samples: list[float]) -> float:
    """Kolmogorov-Smirnov distance between the samples and U[0, 1)."""
    xs = sorted(samples)
    n = len(xs)
    return max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(xs))


@pytest.mark.parametrize("strategy", [s for s in Strategy if s is not Strategy.NONE])
@pytest.mark.parametrize("attempt", [0, 3, 6])
def test_jitter_is_uniform_over_its_range(strategy: Strategy, attempt: int) -> None:
    b = backoff(strategy, base=1.0, cap=1000.0, jitter_factor=0.5)
    rng = random.Random(1234 + attempt)
    n = 4000
    normalised = []
    for _ in range(n):
        previous = 4.0 if strategy is Strategy.DECORRELATED else None
        low, high = b.bounds(attempt, previous)
        delay = b.delay(attempt, rng, previous)
        normalised.append((delay - low) / (high - low))
    # 1.63 / sqrt(n) is the 1% critical value: a fixed seed keeps the test from flaking.
    assert _ks_uniform(normalised) < 1.63 / n**0.5
    assert min(normalised) >= 0.0
    assert max(normalised) < 1.0


def test_no_jitter_is_not_spread_at_all() -> None:
    b = backoff(Strategy.NONE, base=1.0, cap=30.0)
    assert {b.delay(3, random.Random(s)) for s in range(50)} == {8.0}


_FAILING: dict[str, Any] = {
    "settings": {"N8N_MAX_RETRIES": 5, "N8N_CIRCUIT_BREAKER_THRESHOLD": 1000},
    "n8n": {"faults": {"rules": [{"status": {"500": 0.3, "429": 0.2}, "retry_after": 2}]}},
}


@pytest.mark.parametrize("strategy", list(Strategy))
def test_simulated_retries_stay_in_bounds(strategy: Strategy) -> None:
    settings = {**_FAILING["settings"], "N8N_BACKOFF_STRATEGY": strategy.value}
    run = simulate(make(**{**_FAILING, "settings": settings}))
    (result,) = check_run(run, ["backoff_bounds"])
    assert result.passed, result.details
    assert result.checked > 100
    assert run.figures["retries"] > 50


class _BrokenRandom(random.Random):
    """A random source that returns 1.7 instead of [0, 1): every jittered delay overshoots."""

    def random(self) -> float:
        return 1.7


def test_the_checker_catches_a_delay_outside_the_bounds() -> None:
    def break_rng(*args: Any, **kwargs: Any) -> Dispatcher:
        return Dispatcher(*args, **{**kwargs, "rng": _BrokenRandom()})

    settings = {**_FAILING["settings"], "N8N_BACKOFF_STRATEGY": "full"}
    scenario = make(**{**_FAILING, "settings": settings})
    run = simulate(scenario, hooks=Hooks(dispatcher=break_rng))
    (result,) = check_run(run, ["backoff_bounds"])
    assert not result.passed
    example = result.counterexample
    assert example is not None
    assert "outside" in example.message or "bounds" in example.message
    assert example.tenant is not None
    assert example.ref is not None
    assert example.story, "the counterexample tells the story from the trace"
    assert "--seed 1" in example.command
