from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliability.budget import BudgetPolicy, RetryBudget


def test_retries_stop_when_half_the_tokens_are_gone_and_resume_after_successes() -> None:
    b = RetryBudget(BudgetPolicy(max_tokens=10, token_ratio=0.5))
    for _ in range(4):
        b.on_failure("t")
    assert b.allows_retry("t")  # 6 > 5
    b.on_failure("t")
    assert not b.allows_retry("t")  # 5 is not above half
    b.on_success("t")
    assert b.allows_retry("t")  # 5.5


def test_tenants_have_their_own_buckets() -> None:
    b = RetryBudget(BudgetPolicy(max_tokens=2))
    b.on_failure("a")
    assert not b.allows_retry("a")
    assert b.allows_retry("b")


@given(st.lists(st.booleans(), max_size=500))
def test_tokens_stay_within_zero_and_max(outcomes: list[bool]) -> None:
    b = RetryBudget(BudgetPolicy(max_tokens=7, token_ratio=0.3))
    for ok in outcomes:
        (b.on_success if ok else b.on_failure)("t")
        assert 0 <= b.tokens("t") <= 7


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        BudgetPolicy(max_tokens=0)
    with pytest.raises(ValueError, match="token_ratio"):
        BudgetPolicy(token_ratio=0)
