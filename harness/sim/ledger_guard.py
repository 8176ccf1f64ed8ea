"""The Step 06 design's replay guard, for the replay comparison: one ledger row per tenant."""

from __future__ import annotations

__all__ = ["SeedLedgerGuard"]


class SeedLedgerGuard:
    """The Step 06 design's replay protection, faithfully: one `stripe_event_ledger` row per tenant.

    It keeps only `last_processed_event_id` and `last_processed_at` per tenant. An event
    is taken as already processed when its id equals the last one, or when it was created
    before the last processed event (the row's notion of "already past this point"); otherwise
    it is processed and becomes the last. Stripe does not order deliveries, so an older
    legitimate event arriving late is dropped, and an earlier event replayed once another came
    in between (within the same second of `created`) is processed again.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, int]] = {}

    def admit(self, tenant_id: str, event_id: str, created: int) -> bool:
        last = self._last.get(tenant_id)
        if last is not None and (event_id == last[0] or created < last[1]):
            return False
        self._last[tenant_id] = (event_id, created)
        return True
