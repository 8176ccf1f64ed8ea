"""Where an event goes: Stripe event type -> n8n workflows, and the key each delivery carries."""

from __future__ import annotations

from reliability.config import Settings

__all__ = ["WORKFLOWS", "idempotency_key", "route", "workflow_url"]

WORKFLOWS = ("notify-gap-fill", "weekly-recap", "client-onboarding")
"""The seed's three workflow types, each a webhook path under `N8N_WEBHOOK_URL`."""


def route(settings: Settings, event_type: str) -> tuple[str, ...]:
    """The workflows an event type triggers; empty when none is configured."""
    return settings.n8n_routes.get(event_type, ())


def idempotency_key(tenant_id: str, event_id: str, workflow: str) -> str:
    """One key per (tenant, event, workflow): every retry of a delivery carries the same key."""
    return f"{tenant_id}:{event_id}:{workflow}"


def workflow_url(settings: Settings, workflow: str) -> str:
    return f"{settings.n8n_webhook_url.rstrip('/')}/{workflow.lstrip('/')}"
