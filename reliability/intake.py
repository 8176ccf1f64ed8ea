"""The Stripe webhook intake, independent of HTTP: verify, dedupe, enqueue, answer.

`Intake.handle(tenant_id, signature_header, body)` does what `POST /api/stripe/webhook/{tenant}`
does, so the simulator can drive it without a server: refuse what is not a fresh, correctly
signed Stripe event of a known tenant; answer a duplicate without dispatching anything; record a
new event in the ledger and its deliveries in the outbox in one transaction. It never calls n8n:
the caller hands `outbox_ids` to the dispatcher after the answer is out.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from reliability.clock import Clock
from reliability.config import Settings
from reliability.logs import log_fields
from reliability.routing import idempotency_key, route
from reliability.signature import (
    DEFAULT_FUTURE_TOLERANCE,
    DEFAULT_TOLERANCE,
    SignatureError,
    verify,
)
from reliability.store.base import (
    NewDelivery,
    OutboxRow,
    PayloadError,
    Store,
    StoreUnavailable,
)

__all__ = ["MAX_EVENT_ID_LENGTH", "Intake", "IntakeCode", "IntakeResult", "delivery_payload"]

MAX_EVENT_ID_LENGTH = 255
"""Stripe event ids are ~30 characters; anything much longer is not one."""

_log = logging.getLogger("reliability.intake")


class IntakeCode(StrEnum):
    """Every answer the intake gives, as the `code` of its JSON body and a metrics label."""

    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"
    MALFORMED_HEADER = "MALFORMED_HEADER"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_TENANT = "UNKNOWN_TENANT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"


_STATUS: Mapping[IntakeCode, int] = {
    IntakeCode.ACCEPTED: 200,
    IntakeCode.DUPLICATE: 200,
    IntakeCode.PAYLOAD_TOO_LARGE: 413,
    IntakeCode.STORE_UNAVAILABLE: 503,
}


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The answer: HTTP status, JSON body bytes, its code, and the outbox rows to deliver."""

    status: int
    body: bytes
    code: IntakeCode
    outbox_ids: tuple[str, ...] = ()
    event_id: str | None = None
    claimed: tuple[OutboxRow, ...] = ()
    """With a claim lease, the new outbox rows already claimed for immediate delivery."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json(value: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


_DUPLICATE_BODY = _json({"ok": True, "duplicate": True})


@functools.lru_cache(maxsize=64)
def _accepted_body(deliveries: int) -> bytes:
    """The answer to a new event: one per number of deliveries, made once."""
    return _json({"ok": True, "duplicate": False, "deliveries": deliveries})


def _refuse(code: IntakeCode, message: str) -> IntakeResult:
    body = _json({"ok": False, "code": code.value, "message": message})
    return IntakeResult(_STATUS.get(code, 400), body, code)


class _NotAnEvent(ValueError):
    pass


def _parse_constant(name: str) -> Any:
    raise _NotAnEvent(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_parse_constant)


def _parse_event(body: bytes) -> dict[str, Any]:
    try:
        # What json.loads does with bytes, on one decoder made once.
        event = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; deep nesting recurses.
        raise _NotAnEvent(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(event, dict):
        raise _NotAnEvent("body is not a JSON object")
    event_id = event.get("id")
    if (
        not isinstance(event_id, str)
        or not event_id
        or len(event_id) > MAX_EVENT_ID_LENGTH
        or "\x00" in event_id
        or not _encodable(event_id)
    ):
        raise _NotAnEvent(
            f"id must be a non-empty string of at most {MAX_EVENT_ID_LENGTH} chars, "
            "without NUL or lone surrogates"
        )
    if not isinstance(event.get("type"), str) or not event["type"] or not _encodable(event["type"]):
        raise _NotAnEvent("type must be a non-empty string without lone surrogates")
    created = event.get("created")
    if created is not None and (isinstance(created, bool) or not isinstance(created, int)):
        raise _NotAnEvent("created must be an integer")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise _NotAnEvent("data.object must be a JSON object")
    return event


def _encodable(text: str) -> bool:
    """Whether `text` has a UTF-8 form: a JSON `\\ud800` escape decodes to a lone surrogate,
    which no store (and no log line) can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def delivery_payload(tenant_id: str, workflow: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """What n8n receives for one event and workflow: who, which event, its object, the key."""
    data = event["data"]
    payload: dict[str, Any] = {
        "tenant_id": tenant_id,
        "workflow": workflow,
        "idempotency_key": idempotency_key(tenant_id, event["id"], workflow),
        "event_id": event["id"],
        "event_type": event["type"],
        "created": event.get("created"),
        "livemode": bool(event.get("livemode", False)),
        "object": data["object"],
    }
    if isinstance(data.get("previous_attributes"), dict):
        payload["previous_attributes"] = data["previous_attributes"]
    return payload


class Intake:
    """Webhook intake for every tenant of `settings`; time from `clock`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        *,
        tolerance: int = DEFAULT_TOLERANCE,
        future_tolerance: int = DEFAULT_FUTURE_TOLERANCE,
        claim_lease: timedelta | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._clock = clock
        self._tolerance = tolerance
        self._future_tolerance = future_tolerance
        self._claim_lease = claim_lease
        """With a lease, new rows are inserted claimed: delivering them needs no claim query."""
        self._decoy = secrets.token_hex(32)

    @property
    def body_limit(self) -> int:
        return self.settings.reliability_body_limit_bytes

    async def handle(
        self, tenant_id: str, signature_header: str | None, body: bytes
    ) -> IntakeResult:
        """Answer one webhook delivery; see the module docstring for the order of checks."""
        result = await self._handle(tenant_id, signature_header, body)
        level = logging.INFO if result.status < 500 else logging.WARNING
        if _log.isEnabledFor(level):
            _log.log(
                level,
                "stripe webhook %s",
                result.code.value,
                extra=log_fields(
                    tenant_id=tenant_id if tenant_id in self.settings.tenants else None,
                    code=result.code.value,
                    status=result.status,
                    event_id=result.event_id,
                    deliveries=len(result.outbox_ids),
                ),
            )
        return result

    def _unknown_tenant(self, signature_header: str | None, body: bytes) -> IntakeResult:
        """By default, answered exactly as a known tenant's wrong signature is (checked against
        a random secret of this process, so even the timing matches): the answer does not say
        which tenants exist. The log line and the metrics carry `UNKNOWN_TENANT`."""
        if self.settings.reliability_reveal_unknown_tenant:
            return _refuse(IntakeCode.UNKNOWN_TENANT, "no such tenant (or no signing secret)")
        try:
            verify(signature_header, body, (self._decoy,), self._clock)
        except SignatureError as exc:
            # Its message depends on the header and body only, never on the secret.
            answer = _refuse(IntakeCode(exc.code.value), str(exc))
            return _answered_as(IntakeCode.UNKNOWN_TENANT, answer)
        # Only a sender who knows this process's random decoy gets here: nobody.
        return _refuse(IntakeCode.BAD_SIGNATURE, "no such tenant")

    async def _handle(
        self, tenant_id: str, signature_header: str | None, body: bytes
    ) -> IntakeResult:
        if len(body) > self.body_limit:
            return _refuse(
                IntakeCode.PAYLOAD_TOO_LARGE,
                f"body is over the limit of {self.body_limit} bytes",
            )
        tenant = self.settings.tenants.get(tenant_id)
        if tenant is None or not tenant.stripe_webhook_secrets:
            return self._unknown_tenant(signature_header, body)
        try:
            verify(
                signature_header,
                body,
                tenant.stripe_webhook_secrets,
                self._clock,
                tolerance=self._tolerance,
                future_tolerance=self._future_tolerance,
            )
        except SignatureError as exc:
            return _refuse(IntakeCode(exc.code.value), str(exc))
        try:
            event = _parse_event(body)
        except _NotAnEvent as exc:
            return _refuse(IntakeCode.INVALID_JSON, str(exc))

        event_id: str = event["id"]
        deliveries = [
            NewDelivery(
                tenant_id=tenant_id,
                workflow=workflow,
                payload=delivery_payload(tenant_id, workflow, event),
                idempotency_key=idempotency_key(tenant_id, event_id, workflow),
                event_id=event_id,
            )
            for workflow in route(self.settings, event["type"])
        ]
        try:
            accepted = await self._store.accept_event(
                tenant_id, event_id, deliveries, now=self._clock.now(), lease=self._claim_lease
            )
        except StoreUnavailable:
            refused = _refuse(IntakeCode.STORE_UNAVAILABLE, "the store is unavailable; retry")
            return _with_event(refused, event_id)
        except PayloadError as exc:
            return _with_event(_refuse(IntakeCode.INVALID_JSON, str(exc)), event_id)
        if not accepted.new:
            return IntakeResult(200, _DUPLICATE_BODY, IntakeCode.DUPLICATE, (), event_id)
        body_out = _accepted_body(len(accepted.outbox_ids))
        return IntakeResult(
            200, body_out, IntakeCode.ACCEPTED, accepted.outbox_ids, event_id, accepted.claimed
        )


def _answered_as(reason: IntakeCode, answer: IntakeResult) -> IntakeResult:
    """`answer`'s status and body, with the real `reason` as the code logs and metrics see."""
    return replace(answer, code=reason)


def _with_event(result: IntakeResult, event_id: str) -> IntakeResult:
    return replace(result, event_id=event_id)
