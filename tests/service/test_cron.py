"""The seed's cron contract, byte for byte, plus the Bearer form and unicode secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability.app import create_app
from reliability.config import Settings

NO_SECRET = b'{"ok":false,"code":"NO_SECRET_SET"}'
FORBIDDEN = b'{"ok":false,"code":"FORBIDDEN"}'
REACHABLE = b'{"ok":true,"message":"cron reachable"}'


class NoIO:
    """A store that fails the test on any use: the cron check must not touch the database."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the cron route touched the store ({name})")


def client_for(secret: str) -> httpx.AsyncClient:
    app = create_app(Settings(cron_secret=secret), NoIO())  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def get(client: httpx.AsyncClient, url: str, **headers: str) -> tuple[int, bytes, str]:
    response = await client.get(url, headers=headers)
    return response.status_code, response.content, response.headers["content-type"]


async def test_no_secret_set_is_500_whatever_is_sent() -> None:
    async with client_for("") as c:
        for url in ("/api/weekly-recap", "/api/weekly-recap?secret=", "/api/weekly-recap?secret=x"):
            assert await get(c, url) == (500, NO_SECRET, "application/json")
        assert await get(c, "/api/weekly-recap", authorization="Bearer x") == (
            500,
            NO_SECRET,
            "application/json",
        )


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/api/weekly-recap", {}),
        ("/api/weekly-recap?secret=", {}),
        ("/api/weekly-recap?secret=s3cre", {}),
        ("/api/weekly-recap?secret=s3cret1", {}),
        ("/api/weekly-recap?secret=S3CRET", {}),
        ("/api/weekly-recap?Secret=s3cret", {}),
        ("/api/weekly-recap?other=s3cret", {}),
        ("/api/weekly-recap", {"authorization": "Bearer wrong"}),
        ("/api/weekly-recap", {"authorization": "Bearer "}),
        ("/api/weekly-recap", {"authorization": "Basic s3cret"}),
        ("/api/weekly-recap", {"authorization": "s3cret"}),
        ("/api/weekly-recap?secret=wrong", {"authorization": "Bearer nope"}),
    ],
)
async def test_wrong_or_missing_secret_is_403(url: str, headers: dict[str, str]) -> None:
    async with client_for("s3cret") as c:
        assert await get(c, url, **headers) == (403, FORBIDDEN, "application/json")


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/api/weekly-recap?secret=s3cret", {}),
        ("/api/weekly-recap?secret=s3cret&secret=other", {}),  # first one, as URLSearchParams
        ("/api/weekly-recap?x=1&secret=s3cret", {}),
        ("/api/weekly-recap", {"authorization": "Bearer s3cret"}),
        ("/api/weekly-recap", {"authorization": "bearer s3cret"}),
        ("/api/weekly-recap?secret=wrong", {"authorization": "Bearer s3cret"}),
    ],
)
async def test_right_secret_is_200(url: str, headers: dict[str, str]) -> None:
    async with client_for("s3cret") as c:
        assert await get(c, url, **headers) == (200, REACHABLE, "application/json")


async def test_unicode_secret_in_query_and_bearer() -> None:
    secret = "clé-🔑-密钥 +&="
    async with client_for(secret) as c:
        good = "/api/weekly-recap?secret=" + quote(secret, safe="")
        assert await get(c, good) == (200, REACHABLE, "application/json")
        # A space may come as '+', as URLSearchParams decodes it.
        plus = "/api/weekly-recap?secret=" + quote(secret, safe=" ").replace(" ", "+")
        assert await get(c, plus) == (200, REACHABLE, "application/json")
        # An unescaped '&' ends the value: what arrives is a different secret.
        split = "/api/weekly-recap?secret=" + quote(secret[:-2], safe="") + "&="
        assert await get(c, split) == (403, FORBIDDEN, "application/json")
        # A raw UTF-8 header (RFC 9110 allows opaque bytes): sent as bytes, compared as bytes.
        raw = httpx.Headers([(b"authorization", b"Bearer " + secret.encode("utf-8"))])
        response = await c.get("/api/weekly-recap", headers=raw)
        assert (response.status_code, response.content) == (200, REACHABLE)
        near = "/api/weekly-recap?secret=" + quote(secret[:-1], safe="")
        assert await get(c, near) == (403, FORBIDDEN, "application/json")


async def test_head_and_other_methods() -> None:
    async with client_for("s3cret") as c:
        response = await c.post("/api/weekly-recap?secret=s3cret")
        assert response.status_code == 405
        assert response.json() == {"ok": False, "code": "METHOD_NOT_ALLOWED"}
        assert "GET" in response.headers["allow"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    other=st.text(max_size=40),
)
async def test_property_only_the_exact_secret_passes(secret: str, other: str) -> None:
    async with client_for(secret) as c:
        ok = await get(c, "/api/weekly-recap?secret=" + quote(secret, safe=""))
        assert ok == (200, REACHABLE, "application/json")
        status, body, _ = await get(c, "/api/weekly-recap?secret=" + quote(other, safe=""))
        expected = (200, REACHABLE) if other == secret else (403, FORBIDDEN)
        assert (status, body) == expected
