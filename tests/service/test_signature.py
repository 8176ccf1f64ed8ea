"""Stripe-Signature verification: compatible with the official `stripe` package both ways.

The package checks the tolerance against `time.time()`; its side of each comparison runs with
the wall frozen (freezegun) at the instant under test, so boundaries are exact, never "now".
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from reliability.clock import SystemClock
from reliability.signature import (
    SignatureCode,
    SignatureError,
    compute_signature,
    parse_header,
    signature_header,
    verify,
)

BODY = b'{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{}}}'


class FixedClock:
    def __init__(self, unix: float) -> None:
        self.unix = unix

    def monotonic(self) -> float:
        return self.unix

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.unix, UTC)

    async def sleep(self, seconds: float) -> None:
        self.unix += seconds


NOW = 1_700_000_000
CLOCK = FixedClock(NOW)
AT_NOW = freeze_time(datetime.fromtimestamp(NOW, UTC))
"""The wall `time.time()` and `datetime.now()` read, frozen at NOW."""


def code_of(header: str | None, body: bytes = BODY, secrets: tuple[str, ...] = ("whsec_a",)) -> str:
    with pytest.raises(SignatureError) as info:
        verify(header, body, secrets, CLOCK)
    return info.value.code.value


def test_header_from_the_stripe_package_is_accepted() -> None:
    header = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), "whsec_a", timestamp=NOW
    )
    assert verify(header, BODY, ("whsec_a",), CLOCK) == NOW


@AT_NOW
def test_our_header_verifies_with_the_stripe_package() -> None:
    header = signature_header(BODY, ("whsec_a", "whsec_b"), NOW)
    assert stripe.WebhookSignature.verify_header(BODY, header, "whsec_a", tolerance=300)
    assert stripe.WebhookSignature.verify_header(BODY, header, "whsec_b", tolerance=300)
    assert (
        header
        == stripe.WebhookSignature.generate_signature_header(
            BODY.decode(), "whsec_a", timestamp=NOW
        )
        + f",v1={compute_signature('whsec_b', NOW, BODY)}"
    )


def test_any_v1_entry_and_any_secret_may_match() -> None:
    good = compute_signature("whsec_new", NOW, BODY)
    bad = "0" * 64
    header = f"t={NOW},v1={bad},v0={good},v1={good}"
    assert verify(header, BODY, ("whsec_old", "whsec_new"), CLOCK) == NOW
    assert code_of(header, secrets=("whsec_old",)) == "BAD_SIGNATURE"


def test_v0_alone_is_not_enough() -> None:
    v0 = compute_signature("whsec_a", NOW, BODY)
    assert code_of(f"t={NOW},v0={v0}") == "MALFORMED_HEADER"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=,v1=abc",
        "v1=" + "0" * 64,
        f"t=12a,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={NOW}",
        f"t={NOW},v2={'0' * 64}",
        f"t={NOW},v1",
        "t=" + "9" * 20 + ",v1=" + "0" * 64,
        f"t={NOW}," + "v1=x," * 3000,
    ],
)
def test_malformed_headers(header: str | None) -> None:
    assert code_of(header) == "MALFORMED_HEADER"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.replace("v1=", "v1=0", 1)[:-1],  # shifted digest
        lambda h: h.upper().replace("T=", "t=").replace("V1=", "v1="),  # uppercase hex
        lambda h: h + "0",  # one char too long
    ],
)
def test_bad_signatures(mutate: object) -> None:
    header = signature_header(BODY, ("whsec_a",), NOW)
    assert callable(mutate)
    assert code_of(mutate(header)) == "BAD_SIGNATURE"


def test_wrong_secret_body_or_timestamp_is_bad_signature() -> None:
    header = signature_header(BODY, ("whsec_other",), NOW)
    assert code_of(header) == "BAD_SIGNATURE"
    header = signature_header(BODY, ("whsec_a",), NOW)
    assert code_of(header, body=BODY + b" ") == "BAD_SIGNATURE"
    sig = compute_signature("whsec_a", NOW, BODY)
    assert code_of(f"t={NOW + 1},v1={sig}") == "BAD_SIGNATURE"


def test_tolerance_edges() -> None:
    for t, ok in ((NOW - 300, True), (NOW - 301, False), (NOW + 300, True), (NOW + 301, False)):
        header = signature_header(BODY, ("whsec_a",), t)
        if ok:
            assert verify(header, BODY, ("whsec_a",), CLOCK) == t
        else:
            assert code_of(header) == "STALE_TIMESTAMP"


@AT_NOW
@pytest.mark.parametrize(
    ("skew", "ours", "stripes"),
    [
        (-301, "STALE_TIMESTAMP", "Timestamp outside the tolerance zone"),
        (-300, None, None),
        (0, None, None),
        (300, None, None),
        (301, "STALE_TIMESTAMP", None),  # the package bounds only the past; we bound both
    ],
)
def test_tolerance_edges_against_the_stripe_package_at_a_frozen_instant(
    skew: int, ours: str | None, stripes: str | None
) -> None:
    header = signature_header(BODY, ("whsec_a",), NOW + skew)
    # Both read the frozen wall: our SystemClock through datetime.now, the package time.time.
    if ours is None:
        assert verify(header, BODY, ("whsec_a",), SystemClock()) == NOW + skew
    else:
        with pytest.raises(SignatureError) as info:
            verify(header, BODY, ("whsec_a",), SystemClock())
        assert info.value.code.value == ours
    if stripes is None:
        assert stripe.WebhookSignature.verify_header(BODY, header, "whsec_a", tolerance=300)
    else:
        with pytest.raises(stripe.SignatureVerificationError, match=stripes):
            stripe.WebhookSignature.verify_header(BODY, header, "whsec_a", tolerance=300)


def test_stale_is_checked_after_the_signature_like_stripe() -> None:
    header = signature_header(BODY, ("whsec_other",), NOW - 3600)
    assert code_of(header) == "BAD_SIGNATURE"
    old = signature_header(BODY, ("whsec_a",), NOW - 3600)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(BODY, old, "whsec_a", tolerance=300)
    assert code_of(old) == "STALE_TIMESTAMP"


def test_parse_header_keeps_v1_order_and_first_t() -> None:
    parsed = parse_header("t=5,v1=a,t=6,v0=b,v1=c")
    assert (parsed.timestamp, parsed.signatures) == (5, ("a", "c"))


def test_no_secrets_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify("t=1,v1=a", BODY, (), CLOCK)


def test_codes_are_the_documented_three() -> None:
    assert {c.value for c in SignatureCode} == {
        "MALFORMED_HEADER",
        "BAD_SIGNATURE",
        "STALE_TIMESTAMP",
    }


@settings(max_examples=60, deadline=None)
@given(
    body=st.text(max_size=200).map(lambda s: s.encode("utf-8")),
    secret=st.text(min_size=1, max_size=30).filter(lambda s: s.strip(" \t\r\n\f\v")),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_property_stripe_signed_headers_verify(body: bytes, secret: str, skew: int) -> None:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=NOW + skew
    )
    assert verify(header, body, ("whsec_unused", secret), CLOCK) == NOW + skew
    assert stripe.WebhookSignature.verify_header(
        body, signature_header(body, (secret,), NOW + skew), secret, tolerance=None
    )  # signatures only: the tolerance edges are the frozen-instant test's
