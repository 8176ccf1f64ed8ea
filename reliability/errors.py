"""The fixed list of failure categories: what the DLQ stores as `error_code` and metrics label."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode"]


class ErrorCode(StrEnum):
    """Why a delivery failed. Stored verbatim in `n8n_dlq.error_code`."""

    TIMEOUT = "TIMEOUT"
    """The call timed out: n8n may have run the workflow, so a retry reuses the idempotency key."""
    CONNECTION = "CONNECTION"
    """Connect failed, reset, or closed without an answer."""
    HTTP_5XX = "HTTP_5XX"
    HTTP_429 = "HTTP_429"
    HTTP_4XX = "HTTP_4XX"
    """A permanent refusal (4xx other than 408 and 429): never retried."""
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    QUOTA = "QUOTA"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    RETRY_BUDGET = "RETRY_BUDGET"
    """The tenant's retry budget refused a retry while its failure ratio was high."""
    INTERNAL = "INTERNAL"
    """Handling the row raised an error the dispatcher does not expect (a bug, or a setting the
    call cannot use): retried with backoff like a 5xx, dead-lettered after the retries."""
