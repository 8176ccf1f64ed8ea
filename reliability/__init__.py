"""A reference reliability layer for n8n + Stripe glue: backoff, breakers, quotas, DLQ, replay.

The public API is what `__all__` lists; everything else is private.
"""

from __future__ import annotations

from reliability.backoff import Backoff, Strategy, apply_retry_after, parse_retry_after
from reliability.breaker import (
    BreakerPolicy,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpen,
    State,
    Ticket,
    Transition,
)
from reliability.budget import BudgetPolicy, RetryBudget
from reliability.clock import Clock, SystemClock
from reliability.config import (
    ConfigError,
    RetryPolicy,
    Settings,
    TenantConfig,
    TenantPolicy,
    load_settings,
    load_tenants,
)
from reliability.errors import ErrorCode
from reliability.quota import QuotaExceeded, TenantQuotas

__all__ = [
    "Backoff",
    "BreakerPolicy",
    "BreakerRegistry",
    "BudgetPolicy",
    "CircuitBreaker",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "ErrorCode",
    "QuotaExceeded",
    "RetryBudget",
    "RetryPolicy",
    "Settings",
    "State",
    "Strategy",
    "SystemClock",
    "TenantConfig",
    "TenantPolicy",
    "TenantQuotas",
    "Ticket",
    "Transition",
    "apply_retry_after",
    "load_settings",
    "load_tenants",
    "parse_retry_after",
]
