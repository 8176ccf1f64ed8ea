"""The `data.object` of each fake Stripe event: a checkout session, an invoice, a subscription.

Shaped like Stripe's own (API version `harness.fakes.stripe.API_VERSION`), trimmed to the fields
a webhook consumer reads. Random parts come from the caller's `Draw`, in a fixed order, so the
same seed gives the same objects.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Draw", "checkout_session", "invoice", "object_for", "subscription"]

Object = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Draw:
    """What an object needs to know about its event, and the randomness to make up the rest."""

    rng: random.Random
    token: Callable[[int], str]
    """`token(n)`: n random letters and digits from `rng`."""
    when: int
    customer: str
    subscription: str
    tenant: str
    livemode: bool
    amount: int


def object_for(type_: str, draw: Draw) -> tuple[Object, Object | None]:
    """`(object, previous_attributes)` for an event of `type_`."""
    if type_ == "checkout.session.completed":
        return checkout_session(draw), None
    if type_ in ("invoice.paid", "invoice.payment_failed"):
        return invoice(draw, paid=type_ == "invoice.paid"), None
    deleted = type_ == "customer.subscription.deleted"
    return subscription(draw, deleted=deleted), None if deleted else {"status": "active"}


def _metadata(draw: Draw) -> dict[str, str]:
    return {"tenant_id": draw.tenant} if draw.tenant else {}


def checkout_session(d: Draw) -> Object:
    return {
        "id": ("cs_live_" if d.livemode else "cs_test_") + d.token(58),
        "object": "checkout.session",
        "amount_subtotal": d.amount,
        "amount_total": d.amount,
        "client_reference_id": d.tenant or None,
        "created": d.when,
        "currency": "usd",
        "customer": d.customer,
        "customer_details": {"email": f"billing+{d.token(6).lower()}@example.com"},
        "expires_at": d.when + 86_400,
        "livemode": d.livemode,
        "metadata": _metadata(d),
        "mode": "subscription",
        "payment_status": "paid",
        "status": "complete",
        "subscription": d.subscription,
    }


def invoice(d: Draw, *, paid: bool) -> Object:
    return {
        "id": "in_" + d.token(24),
        "object": "invoice",
        "amount_due": d.amount,
        "amount_paid": d.amount if paid else 0,
        "amount_remaining": 0 if paid else d.amount,
        "attempt_count": 1 if paid else d.rng.randint(1, 4),
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "created": d.when,
        "currency": "usd",
        "customer": d.customer,
        "livemode": d.livemode,
        "metadata": _metadata(d),
        "next_payment_attempt": None if paid else d.when + 3 * 86_400,
        "paid": paid,
        "period_end": d.when,
        "period_start": d.when - 30 * 86_400,
        "status": "paid" if paid else "open",
        "subscription": d.subscription,
    }


def subscription(d: Draw, *, deleted: bool) -> Object:
    item = {
        "id": "si_" + d.token(14),
        "object": "subscription_item",
        "price": {
            "id": "price_" + d.token(24),
            "object": "price",
            "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 1},
            "unit_amount": d.amount,
        },
        "quantity": 1,
    }
    return {
        "id": d.subscription,
        "object": "subscription",
        "cancel_at_period_end": False,
        "canceled_at": d.when if deleted else None,
        "created": d.when - 60 * 86_400,
        "currency": "usd",
        "current_period_end": d.when + 30 * 86_400,
        "current_period_start": d.when,
        "customer": d.customer,
        "ended_at": d.when if deleted else None,
        "items": {"object": "list", "data": [item]},
        "livemode": d.livemode,
        "metadata": _metadata(d),
        "status": "canceled" if deleted else "past_due",
    }
