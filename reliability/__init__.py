"""A reference reliability layer for n8n + Stripe glue: backoff, breakers, quotas, DLQ, replay.

`__all__` here lists the policies and their configuration, which need nothing beyond the
standard library. The service's parts are public in their own modules, each with its own
`__all__`: `reliability.app.create_app`, `reliability.dispatch.Dispatcher`,
`reliability.intake.Intake`, `reliability.decision.decide`, `reliability.store.open_store`,
`reliability.events`, `reliability.signature.verify`. Names starting with `_` are private.
"""

from __future__ import annotations

from reliability.backoff import (
    AdditiveJitter,
    Backoff,
    DecorrelatedJitter,
    EqualJitter,
    FullJitter,
    NoJitter,
    Strategy,
    apply_retry_after,
    backoff,
    parse_retry_after,
)
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
    "AdditiveJitter",
    "Backoff",
    "BreakerPolicy",
    "BreakerRegistry",
    "BudgetPolicy",
    "CircuitBreaker",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "DecorrelatedJitter",
    "EqualJitter",
    "ErrorCode",
    "FullJitter",
    "NoJitter",
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
    "backoff",
    "load_settings",
    "load_tenants",
    "parse_retry_after",
]
