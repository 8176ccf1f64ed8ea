"""Retry budgets: gRPC-style retry throttling, per tenant, so retries never multiply an outage.

Each tenant holds a token bucket of `max_tokens`, full at start. A failed call takes one token,
a successful call gives back `token_ratio`. Retries are allowed only while the bucket holds more
than half of `max_tokens`. Counting calls, not time, keeps it free of clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BudgetPolicy", "RetryBudget"]


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """gRPC's `retryThrottling` parameters."""

    max_tokens: float = 10.0
    token_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not self.max_tokens > 0:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        if not 0 < self.token_ratio <= 1:
            raise ValueError(f"token_ratio must lie in (0, 1], got {self.token_ratio}")


class RetryBudget:
    """Token buckets per tenant. Memory is one float per tenant seen."""

    def __init__(self, policy: BudgetPolicy) -> None:
        self.policy = policy
        self._tokens: dict[str, float] = {}

    def tokens(self, tenant_id: str) -> float:
        return self._tokens.get(tenant_id, self.policy.max_tokens)

    def allows_retry(self, tenant_id: str) -> bool:
        """True while the tenant's failure ratio is low enough for retries to help."""
        return self.tokens(tenant_id) > self.policy.max_tokens / 2

    def on_success(self, tenant_id: str) -> None:
        self._tokens[tenant_id] = min(
            self.policy.max_tokens, self.tokens(tenant_id) + self.policy.token_ratio
        )

    def on_failure(self, tenant_id: str) -> None:
        self._tokens[tenant_id] = max(0.0, self.tokens(tenant_id) - 1.0)
