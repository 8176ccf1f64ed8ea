from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliability.backoff import (
    Backoff,
    Strategy,
    apply_retry_after,
    backoff,
    parse_retry_after,
)

bases = st.floats(min_value=0.001, max_value=3600, allow_nan=False)
factors = st.floats(min_value=0.0, max_value=1.0)
attempts = st.integers(min_value=0, max_value=2000)
seeds = st.integers(min_value=0, max_value=2**32)


@st.composite
def backoffs(draw: st.DrawFn, strategy: Strategy | None = None) -> Backoff:
    base = draw(bases)
    cap = draw(st.floats(min_value=base, max_value=max(base, 86400.0), allow_nan=False))
    return backoff(
        draw(st.sampled_from(Strategy)) if strategy is None else strategy,
        base=base,
        cap=cap,
        jitter_factor=draw(factors),
    )


@given(backoffs(), attempts, seeds)
def test_every_delay_lies_inside_its_strategy_bounds_and_never_above_the_cap(
    b: Backoff, attempt: int, seed: int
) -> None:
    rng = random.Random(seed)
    previous = None
    for a in range(attempt, attempt + 5):
        low, high = b.bounds(a, previous)
        d = b.delay(a, rng, previous)
        assert low <= d <= high, (a, previous, d, (low, high))
        assert 0 <= d <= b.cap
        previous = d


@given(backoffs(Strategy.ADDITIVE), st.integers(min_value=0, max_value=60), seeds)
def test_additive_jitter_is_the_delay_minus_its_exponential_part(
    b: Backoff, attempt: int, seed: int
) -> None:
    d = b.delay(attempt, random.Random(seed))
    exp = b.exponential(attempt)
    if exp + b.jitter_factor * b.base < b.cap:  # uncapped: the jitter shows in full
        jitter = d - exp
        # Float rounding of exp + jitter may land a hair off; allow one ulp-sized slack.
        slack = 1e-9 * max(1.0, exp)
        assert -slack <= jitter < b.jitter_factor * b.base + slack or b.jitter_factor == 0


def test_additive_formula_matches_the_step_06_design_exactly() -> None:
    b = backoff(Strategy.ADDITIVE, base=1.0, cap=30.0, jitter_factor=0.1)
    u = random.Random(7).random()
    assert b.delay(3, random.Random(7)) == min(1.0 * 2**3 + u * 0.1 * 1.0, 30.0)
    assert b.delay(10, random.Random(7)) == 30.0


def test_attempt_zero_waits_about_the_base_delay() -> None:
    b = backoff(Strategy.NONE, base=2.0, cap=60.0)
    assert [b.delay(a, random.Random(0)) for a in range(6)] == [2, 4, 8, 16, 32, 60]


def test_huge_attempts_do_not_overflow() -> None:
    for strategy in Strategy:
        b = backoff(strategy, base=1.0, cap=30.0)
        assert 0 <= b.delay(10**6, random.Random(1)) <= 30.0


def test_same_seed_same_delays() -> None:
    for strategy in Strategy:
        b = backoff(strategy, base=0.5, cap=20.0, jitter_factor=0.3)
        one = [b.delay(a, random.Random(42)) for a in range(10)]
        two = [b.delay(a, random.Random(42)) for a in range(10)]
        assert one == two


def test_decorrelated_grows_from_its_previous_delay() -> None:
    b = backoff(Strategy.DECORRELATED, base=1.0, cap=1000.0)
    rng = random.Random(3)
    previous = None
    for a in range(20):
        d = b.delay(a, rng, previous)
        assert 1.0 <= d <= (3 * (previous or 1.0))
        previous = d


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": 0.0}, "base must be positive"),
        ({"base": -1.0}, "base must be positive"),
        ({"base": 2.0, "cap": 1.0}, "cap (1.0) must be at least base (2.0)"),
        ({"jitter_factor": 1.5}, "jitter_factor must lie in [0, 1]"),
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        backoff(Strategy.ADDITIVE, **kwargs)


NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("Fri, 27 Nov 2026 12:00:30 GMT", 30.0),
        ("-5", None),
        ("soon", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@given(
    st.floats(min_value=0, max_value=1e6),
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e7)),
    st.floats(min_value=0.001, max_value=1e5),
)
def test_retry_after_is_honoured_up_to_the_cap(
    delay: float, retry_after: float | None, cap: float
) -> None:
    d = apply_retry_after(delay, retry_after, cap)
    assert d <= cap
    if retry_after is not None:
        assert d >= min(retry_after, cap)
