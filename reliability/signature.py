"""Verify Stripe's `Stripe-Signature` header: v1 HMAC-SHA256 over `"<t>.<raw body>"`.

Accepts exactly what the official `stripe` package (`WebhookSignature.verify_header`) accepts,
checking in its order (header shape, a v1 entry, a matching signature, then the timestamp; a
property test holds the two together), and adds two things: several secrets per tenant
(rotation: any one may match) and a bound on timestamps from the future, so a captured request
cannot be pre-dated for a later replay. That bound is the one intended difference.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from reliability.clock import Clock

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE",
    "DEFAULT_TOLERANCE",
    "ParsedHeader",
    "SignatureCode",
    "SignatureError",
    "compute_signature",
    "parse_header",
    "signature_header",
    "verify",
]

DEFAULT_TOLERANCE = 300
"""Seconds a signature stays valid after its timestamp (the official verifier's default)."""

DEFAULT_FUTURE_TOLERANCE = 300
"""Seconds a timestamp may lie ahead of our clock (clock skew); later ones are refused."""

_SCHEME = "v1"
_HEX = frozenset("0123456789abcdef")
_UNEXTRACTABLE = "unable to extract timestamp and signatures from header"


class SignatureCode(StrEnum):
    """Why a header was refused; the intake answers these codes verbatim."""

    MALFORMED_HEADER = "MALFORMED_HEADER"
    """Missing, unparsable, no integer `t`, or no `v1` entry."""
    BAD_SIGNATURE = "BAD_SIGNATURE"
    """No `v1` entry matches the body under any of the tenant's secrets."""
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    """The signature matches but `t` is older than the tolerance or too far in the future."""


class SignatureError(ValueError):
    """A refused header: `code` is machine-readable, the message says what was wrong."""

    def __init__(self, code: SignatureCode, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    timestamp: int
    signatures: tuple[str, ...]
    """The `v1` entries, in header order (`v0` and unknown schemes are dropped)."""


def parse_header(header: str | None) -> ParsedHeader:
    """Split `t=<unix>,v1=<hex>[,v1=<hex>...]` exactly as stripe-python does.

    Items are split at `,` and each at its first two `=` (the value is what lies between them);
    keys are compared as written (`" t"` is not `t`); items with other keys are ignored, with
    or without `=`; a `t` or `v1` item without `=` is malformed; the first `t` must be a Python
    `int()`; at least one `v1` item must exist. Raises `SignatureError(MALFORMED_HEADER)`.
    """
    if not header:
        raise SignatureError(SignatureCode.MALFORMED_HEADER, "no Stripe-Signature header")
    items = [item.split("=", 2) for item in header.split(",")]
    if any(len(item) < 2 for item in items if item[0] in ("t", _SCHEME)):
        raise SignatureError(SignatureCode.MALFORMED_HEADER, _UNEXTRACTABLE)
    stamps = [item[1] for item in items if item[0] == "t"]
    try:
        timestamp = int(stamps[0])
    except (IndexError, ValueError):
        raise SignatureError(SignatureCode.MALFORMED_HEADER, _UNEXTRACTABLE) from None
    signatures = tuple(item[1] for item in items if item[0] == _SCHEME)
    if not signatures:
        raise SignatureError(
            SignatureCode.MALFORMED_HEADER, "no signatures found with expected scheme v1"
        )
    return ParsedHeader(timestamp, signatures)


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret` (UTF-8), as Stripe signs."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.digest(secret.encode("utf-8"), signed, "sha256").hex()  # one-shot, in C


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """A header signed under every secret (one `v1` each), as Stripe sends during rotation."""
    entries = ",".join(f"v1={compute_signature(s, timestamp, body)}" for s in secrets)
    return f"t={timestamp},{entries}"


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    clock: Clock,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    future_tolerance: int = DEFAULT_FUTURE_TOLERANCE,
) -> int:
    """Check `header` against the raw `body`; return its timestamp or raise `SignatureError`.

    Any `v1` entry matching under any secret is enough. Every comparison runs in constant time
    and every (secret, entry) pair is compared, so timing says nothing about which one matched.
    """
    if not secrets:
        raise ValueError("verify needs at least one signing secret")
    parsed = parse_header(header)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        # stripe-python verifies the body's text: a body that is not UTF-8 never verifies.
        raise SignatureError(SignatureCode.BAD_SIGNATURE, "the body is not UTF-8") from None
    # stripe-python compares the entries in order and stops at the first that is not ASCII
    # (hmac.compare_digest raises on it): only the entries before it can match.
    usable: list[str] = []
    for entry in parsed.signatures:
        if not entry.isascii():
            break
        usable.append(entry)
    candidates = [s.encode("ascii") for s in usable if len(s) == 64 and _HEX.issuperset(s)]
    matched = False
    for secret in secrets:
        expected = compute_signature(secret, parsed.timestamp, body).encode("ascii")
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(
            SignatureCode.BAD_SIGNATURE,
            "no signatures found matching the expected signature for payload",
        )
    now = clock.now().timestamp()
    if parsed.timestamp < now - tolerance:
        raise SignatureError(
            SignatureCode.STALE_TIMESTAMP,
            f"timestamp {parsed.timestamp} is older than the tolerance of {tolerance} s",
        )
    if parsed.timestamp > now + future_tolerance:
        raise SignatureError(
            SignatureCode.STALE_TIMESTAMP,
            f"timestamp {parsed.timestamp} is more than {future_tolerance} s in the future",
        )
    return parsed.timestamp
