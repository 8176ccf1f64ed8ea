"""The plugin's fixtures for code that makes its own clients and reads the wall itself:
`fake_n8n_respx` and `virtual_clock(freeze=True)`, run in a pytester sandbox as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-q", *args)


USER_CODE = """
import asyncio, os, time
from datetime import UTC, datetime

import httpx, pytest

KEY = {"X-N8N-Webhook-Key": "local-test-webhook-key"}


async def trigger(url, tenant):  # the user's code: its own client, its own retries
    async with httpx.AsyncClient() as http:
        for attempt in range(4):
            r = await http.post(f"{url}/weekly-recap", json={"tenant_id": tenant}, headers=KEY)
            if r.status_code < 500:
                return r, datetime.now(UTC)
            await asyncio.sleep(2 ** attempt)
    raise RuntimeError("gave up")


def trigger_sync(url):
    return httpx.post(f"{url}/notify-gap-fill", json={"tenant_id": "sync"}, headers=KEY)
"""


def test_fake_n8n_respx_for_async_and_sync_clients_beside_respx_mock(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("N8N_WEBHOOK_URL", "http://n8n.internal:5678/webhook")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_named_url=USER_CODE + NAMED_URL_TESTS, test_configured_url=USER_CODE + ENV_TESTS
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=5)


NAMED_URL_TESTS = """
URL = "https://n8n.example.com/tools/webhook"

@pytest.fixture
def n8n_webhook_url():
    return URL

@pytest.mark.faults({"rules": [{"path": "weekly-recap", "latency": {"fixed": 10},
                                "fail_first": {"count": 2, "fault": 503}}]})
@pytest.mark.virtual_clock(freeze=True)
async def test_retries_on_virtual_time(fake_n8n_respx, virtual_clock, respx_mock):
    api = respx_mock.get("https://api.example.com/me").respond(json={"me": 1})
    start = virtual_clock.now()
    r, when = await trigger(URL, "acme")
    assert r.json() == [{"ok": True, "workflow": "weekly-recap", "status": "processed"}]
    # three calls of 10 s latency, and backoff sleeps of 1 s and 2 s between them
    assert virtual_clock.elapsed() == 33
    assert (when - start).total_seconds() == 33  # the wall read by user code followed
    assert fake_n8n_respx.journal.counts_by_tenant() == {"acme": 3}
    assert httpx.get("https://api.example.com/me").json() == {"me": 1}
    assert api.call_count == 1
    with pytest.raises(Exception, match="not mocked"):
        httpx.get("https://elsewhere.example.com/")

def test_sync_client_in_a_sync_test(fake_n8n_respx):
    assert trigger_sync(URL).status_code == 200
    control = httpx.get(URL.removesuffix("/webhook") + "/__journal").json()
    assert control["counts_by_tenant"] == {"sync": 1}

def test_unused_fake_route_does_not_fail_respx_checks(fake_n8n_respx, respx_mock):
    assert len(fake_n8n_respx.journal) == 0
"""

ENV_TESTS = """
def test_configured_url(fake_n8n_respx, n8n_webhook_url):
    assert n8n_webhook_url == os.environ["N8N_WEBHOOK_URL"]
    assert trigger_sync("http://n8n.internal:5678/webhook").status_code == 200
    assert fake_n8n_respx.journal.counts_by_tenant() == {"sync": 1}

def test_only_the_configured_url_is_routed(fake_n8n_respx):
    with pytest.raises(Exception, match="not mocked"):
        trigger_sync("http://fake-n8n.invalid/webhook")
"""


def test_missing_respx_or_freezegun_fails_only_the_tests_using_them_naming_the_extra(
    pytester: pytest.Pytester,
) -> None:
    # Absent packages, as find_spec sees them: sys.modules says "not importable".
    pytester.makeconftest(
        "import sys\nsys.modules['respx'] = None\nsys.modules['freezegun'] = None\n"
    )
    result = _run(
        pytester,
        """
import pytest

def test_plain():
    pass

async def test_virtual_only(virtual_clock):
    pass

def test_routed(fake_n8n_respx):
    pass

@pytest.mark.virtual_clock(freeze=True)
async def test_frozen(virtual_clock):
    pass
""",
    )
    result.assert_outcomes(passed=2, errors=2)
    out = result.stdout.str()
    assert (
        "the fake_n8n_respx fixture needs respx, which is not installed: "
        "pip install 'reliability-harness[respx]'"
    ) in out
    assert (
        "virtual_clock(freeze=True) needs freezegun, which is not installed: "
        "pip install 'reliability-harness[freezegun]'"
    ) in out


def test_freeze_from_a_conftest_the_marker_wins_and_the_wall_comes_back(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef virtual_clock_freeze():\n    return True\n"
    )
    result = _run(
        pytester,
        """
import asyncio, os, time
import pytest

async def test_a_frozen(virtual_clock):
    await asyncio.sleep(600)
    assert time.time() == virtual_clock.now().timestamp()

@pytest.mark.virtual_clock(freeze=False)
async def test_b_the_marker_wins(virtual_clock):
    assert time.time.__module__ == "time"

def test_c_after_the_frozen_tests():
    assert time.time.__module__ == "time"
    # real time again: the file pytester just wrote is seconds old, not months in the future
    assert abs(time.time() - os.stat(__file__).st_mtime) < 600

@pytest.mark.virtual_clock("yes")
async def test_d_bad_marker(virtual_clock):
    pass

@pytest.mark.virtual_clock(freez=True)
async def test_e_misspelt_marker(virtual_clock):
    pass
""",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=3, errors=2)
    assert result.stdout.str().count("use @pytest.mark.virtual_clock(freeze=True|False)") >= 2


def test_loading_the_plugin_imports_neither_respx_nor_freezegun() -> None:
    code = (
        "import sys, harness.testing.plugin as p, importlib\n"
        "for name in p.pytest_plugins: importlib.import_module(name)\n"
        "print(sorted(m for m in ('respx', 'freezegun') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
