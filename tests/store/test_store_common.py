"""The shared pure parts: payload checks, message bounds, alert rule, pgtest's URL resolution."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.testing.postgres import ENV_VAR, PgUnavailable, choose_server, resolve_database_url
from reliability.errors import ErrorCode
from reliability.store import MAX_ERROR_MESSAGE, AttemptError, PayloadError
from reliability.store._common import bound, crossed, decode_errors, encode_payload, errors_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


@given(st.dictionaries(st.text(), json_values, max_size=5), st.integers(0, 400))
def test_a_payload_round_trips_or_is_refused(payload: dict[str, object], limit: int) -> None:
    size = len(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode())
    if size > limit or contains_nul(payload):
        with pytest.raises(PayloadError, match=r"^deliveries\[0\]: payload"):
            encode_payload(payload, max_bytes=limit, where="deliveries[0]")
    else:
        encoded = encode_payload(payload, max_bytes=limit, where="deliveries[0]")
        assert json.loads(encoded) == payload


@given(st.text(max_size=3 * MAX_ERROR_MESSAGE))
def test_messages_are_bounded(message: str) -> None:
    out = bound(message)
    assert len(out) <= MAX_ERROR_MESSAGE
    assert "\x00" not in out
    assert message.replace("\x00", "").startswith(out)


@given(st.integers(0, 1000), st.integers(1, 1000))
def test_the_alert_fires_exactly_on_the_crossing(depth: int, threshold: int) -> None:
    assert crossed(depth, threshold) == (depth == threshold)


def test_attempt_errors_round_trip() -> None:
    errors = [AttemptError(1, datetime(2031, 1, 1, tzinfo=UTC), ErrorCode.HTTP_429, "slow down")]
    assert decode_errors(errors_json(errors)) == tuple(errors)
    assert decode_errors(json.loads(errors_json(errors))) == tuple(errors)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        encode_payload({"x": "\ud800"}, max_bytes=100, where="p")


def test_pg_url_comes_from_the_variable_first() -> None:
    url = resolve_database_url({ENV_VAR: "postgresql://u@h/db"}, docker_answers=lambda: True)
    assert url == "postgresql://u@h/db"


def test_pg_url_falls_back_to_a_container_when_docker_answers() -> None:
    url = resolve_database_url(
        {}, docker_answers=lambda: True, start_container=lambda: "postgresql://c@h/db"
    )
    assert url == "postgresql://c@h/db"


def test_pg_url_falls_back_to_the_embedded_server_in_the_run_directory(tmp_path: Path) -> None:
    started: list[Path] = []

    def start(data_dir: Path) -> str:
        started.append(data_dir)
        return "postgresql://postgres:@/postgres?host=/x"

    url = resolve_database_url(
        {ENV_VAR: " "},
        docker_answers=lambda: False,
        embedded_installed=lambda: True,
        embedded_dir=tmp_path,
        start_embedded_server=start,
    )
    assert url == "postgresql://postgres:@/postgres?host=/x"
    assert started == [tmp_path / "data"]


def test_pg_url_fails_naming_every_way() -> None:
    with pytest.raises(PgUnavailable) as info:
        resolve_database_url(
            {ENV_VAR: "  "}, docker_answers=lambda: False, embedded_installed=lambda: False
        )
    assert ENV_VAR in str(info.value)
    assert "testcontainers" in str(info.value)
    assert "Docker" in str(info.value)
    assert "reliability-harness[embedded-pg]" in str(info.value)


def test_the_server_choice_follows_the_documented_order() -> None:
    url = {ENV_VAR: "postgresql://u@h/db"}
    yes, no = (lambda: True), (lambda: False)
    assert choose_server(url, docker_answers=yes, embedded_installed=yes) == "url"
    assert choose_server({}, docker_answers=yes, embedded_installed=yes) == "testcontainers"
    assert choose_server({}, docker_answers=no, embedded_installed=yes) == "embedded"
    assert choose_server({}, docker_answers=no, embedded_installed=no) == "none"
