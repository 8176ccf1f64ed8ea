"""Prometheus metrics: one registry per app, fed by the dispatcher's events and by the intake.

`Metrics.observe` is an `Observer` (hand it to `Dispatcher.add_observer`); the app calls
`intake_result` per webhook and refreshes the DLQ depth and breaker states on each scrape.
Tenant labels come only from configured tenants, so a caller cannot grow the label space.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from reliability.breaker import State
from reliability.errors import ErrorCode
from reliability.events import (
    Attempted,
    BreakerChanged,
    DeadLettered,
    Delivered,
    DuplicateSent,
    Event,
    QuotaWaited,
    Retrying,
    Snoozed,
)

__all__ = ["CONTENT_TYPE", "OTHER_TENANT", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER_TENANT = "_other"
"""The tenant label of intake results for tenant ids that are not configured."""

_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


_DUPLICATES = "2xx answers to deliveries not recorded as done (n8n sees them twice)."
_INTAKE = "Stripe webhook answers, by tenant and code."


def _counter(registry: CollectorRegistry, name: str, doc: str, label: str) -> Counter:
    """A counter labelled by tenant and one more label."""
    return Counter(name, doc, ["tenant", label], registry=registry)


class Metrics:
    """The service's metrics on their own `CollectorRegistry` (several apps per process work)."""

    def __init__(
        self, known_tenants: Container[str], registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._known = known_tenants
        r = self.registry
        self.attempts = Counter(
            "reliability_delivery_attempts",
            "Calls to n8n by tenant and outcome (ok or the error code).",
            ["tenant", "outcome"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "reliability_delivery_attempt_seconds",
            "Duration of calls to n8n, by workflow.",
            ["workflow"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.deliveries = Counter(
            "reliability_deliveries",
            "Deliveries settled, by tenant and outcome (delivered, dead_lettered).",
            ["tenant", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "reliability_dead_letters",
            "Deliveries moved to the DLQ, by tenant and error code.",
            ["tenant", "error_code"],
            registry=r,
        )
        self.retries = Counter(
            "reliability_retries",
            "Retries scheduled, by tenant and cause.",
            ["tenant", "cause"],
            registry=r,
        )
        self.snoozes = Counter(
            "reliability_snoozes",
            "Deliveries put off without spending an attempt, by tenant and cause.",
            ["tenant", "cause"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "reliability_breaker_state",
            "Circuit breaker state per tenant: 0 closed, 1 half-open, 2 open.",
            ["tenant"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "reliability_breaker_transitions",
            "Circuit breaker state changes, by tenant, from and to.",
            ["tenant", "from_state", "to_state"],
            registry=r,
        )
        self.quota_waits = Counter(
            "reliability_quota_waits",
            "Times a delivery waited for a tenant quota slot.",
            ["tenant"],
            registry=r,
        )
        self.quota_wait_seconds = Counter(
            "reliability_quota_wait_seconds",
            "Seconds spent waiting for tenant quota slots.",
            ["tenant"],
            registry=r,
        )
        self.dlq_depth = Gauge(
            "reliability_dlq_depth",
            "Unexpired DLQ entries, by tenant and error code (refreshed on each scrape).",
            ["tenant", "error_code"],
            registry=r,
        )
        self.duplicates = _counter(r, "reliability_duplicate_sends", _DUPLICATES, "cause")
        self.intake = _counter(r, "reliability_intake_results", _INTAKE, "code")

    def _tenant(self, tenant_id: str) -> str:
        return tenant_id if tenant_id in self._known else OTHER_TENANT

    def observe(self, event: Event) -> None:
        """The dispatcher `Observer`: count what it decided."""
        match event:
            case Attempted():
                outcome = "ok" if event.outcome is None else event.outcome.value
                self.attempts.labels(self._tenant(event.tenant_id), outcome).inc()
                self.attempt_seconds.labels(event.workflow).observe(max(0.0, event.duration))
            case Delivered():
                self.deliveries.labels(self._tenant(event.tenant_id), "delivered").inc()
            case DeadLettered():
                tenant = self._tenant(event.tenant_id)
                self.deliveries.labels(tenant, "dead_lettered").inc()
                self.dead_letters.labels(tenant, event.error_code.value).inc()
            case Retrying():
                self.retries.labels(self._tenant(event.tenant_id), event.cause.value).inc()
            case Snoozed():
                self.snoozes.labels(self._tenant(event.tenant_id), event.cause.value).inc()
            case BreakerChanged():
                tenant = self._tenant(event.tenant_id)
                self.breaker_state.labels(tenant).set(_STATE_VALUE[event.new])
                self.breaker_transitions.labels(tenant, event.old.value, event.new.value).inc()
            case DuplicateSent():
                self.duplicates.labels(self._tenant(event.tenant_id), event.cause).inc()
            case QuotaWaited():
                tenant = self._tenant(event.tenant_id)
                self.quota_waits.labels(tenant).inc()
                self.quota_wait_seconds.labels(tenant).inc(max(0.0, event.waited))

    def intake_result(self, tenant_id: str, code: str) -> None:
        self.intake.labels(self._tenant(tenant_id), code).inc()

    def set_breaker_states(self, states: Mapping[str, State]) -> None:
        for tenant_id, state in states.items():
            self.breaker_state.labels(self._tenant(tenant_id)).set(_STATE_VALUE[state])

    def set_dlq_depth(self, depth: Mapping[tuple[str, ErrorCode], int]) -> None:
        """Replace the DLQ depth gauge with a fresh reading (series that emptied disappear)."""
        self.dlq_depth.clear()
        totals: dict[tuple[str, str], int] = {}
        for (tenant_id, error_code), n in depth.items():
            key = (self._tenant(tenant_id), ErrorCode(error_code).value)
            totals[key] = totals.get(key, 0) + n
        for (tenant, code), n in totals.items():
            self.dlq_depth.labels(tenant, code).set(n)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
