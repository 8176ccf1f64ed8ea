"""The pytest plugin's fake fixtures and markers, run in a pytester sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SAMPLES = Path(__file__).resolve().parents[2] / "n8n" / "workflows"


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(source)
    # A subprocess, as a user's run would be: an in-process run drops the modules it imported
    # from sys.modules afterwards, which leaves httpx holding stale httpcore exception classes.
    return pytester.runpytest_subprocess("-q", *args)


def test_fake_n8n_in_process_with_markers(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
        import httpx, pytest

        KEY = {"X-N8N-Webhook-Key": "local-test-webhook-key"}

        @pytest.mark.faults({"rules": [{"path": "weekly-recap", "status": {503: 0.5}}]})
        @pytest.mark.seed(7)
        async def test_user_code(fake_n8n):
            async with httpx.AsyncClient(transport=fake_n8n.transport,
                                         base_url=fake_n8n.base_url, headers=KEY) as client:
                codes = [(await client.post("/webhook/weekly-recap", json={})).status_code
                         for _ in range(20)]
            assert set(codes) == {200, 503}
            assert len(fake_n8n.journal) == 20
            assert fake_n8n.faults.profile.rules[0].path == "weekly-recap"
            print("CODES", codes)

        async def test_no_markers_no_faults(fake_n8n):
            async with fake_n8n.client(headers=KEY) as client:
                r = await client.post("/webhook/notify-gap-fill", json={})
            assert r.status_code == 200
        """,
        "-s",
    )
    result.assert_outcomes(passed=2)
    codes = re.findall(r"CODES \[[^]]*\]", result.stdout.str())
    assert len(codes) == 1
    rerun = pytester.runpytest_subprocess("-q", "-s")
    assert re.findall(r"CODES \[[^]]*\]", rerun.stdout.str()) == codes  # same seed, same codes


def test_fake_n8n_on_the_virtual_clock(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
        import httpx, pytest

        @pytest.mark.faults({"rules": [{"latency": {"fixed": 3600}}]})
        async def test_an_hour_of_latency_for_free(virtual_clock, fake_n8n):
            t0 = virtual_clock.monotonic()
            async with fake_n8n.client() as client:
                r = await client.post("/webhook/notify-gap-fill", json={},
                                      headers={"X-N8N-Webhook-Key": "local-test-webhook-key"})
            assert r.status_code == 200
            assert virtual_clock.monotonic() - t0 == 3600
        """,
    )
    result.assert_outcomes(passed=1)


def test_fake_n8n_server_and_workflows_marker(pytester: pytest.Pytester, tmp_path: Path) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(
        '{"name": "w", "active": true, "connections": {}, "nodes": [{"name": "Webhook",'
        ' "type": "n8n-nodes-base.webhook", "typeVersion": 2,'
        ' "parameters": {"httpMethod": "PUT", "path": "mine"}}]}'
    )
    result = _run(
        pytester,
        f"""
        import httpx, pytest

        @pytest.mark.workflows({str(wf)!r})
        def test_served(fake_n8n_server):
            assert fake_n8n_server.base_url.startswith("http://127.0.0.1:")
            r = httpx.put(fake_n8n_server.base_url + "/webhook/mine", json={{"tenant_id": "a"}})
            assert r.json() == {{"message": "Workflow was started"}}
            gone = httpx.post(fake_n8n_server.base_url + "/webhook/weekly-recap")
            assert gone.status_code == 404
            assert fake_n8n_server.journal.counts_by_tenant() == {{"a": 1, "": 1}}
        """,
    )
    result.assert_outcomes(passed=1)


def test_bad_marker_profile_errors_naming_the_key(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
        import pytest

        @pytest.mark.faults({"rules": [{"status": {500: 2}}]})
        def test_bad(fake_n8n):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rules[[]0[]].status.500: probability 2 is outside 0..1*"])


def test_fake_stripe_fixture_is_seeded(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
        import pytest, stripe

        @pytest.mark.seed(3)
        def test_a(fake_stripe):
            event = fake_stripe.event("invoice.paid", tenant="t")
            req = fake_stripe.signed(event, tenant="t")
            sig = dict(req.headers)["Stripe-Signature"]
            assert stripe.Webhook.construct_event(req.body, sig, fake_stripe.secret_for("t")).id
            print("ID", event["id"])

        @pytest.mark.seed(3)
        def test_b(fake_stripe):
            print("ID", fake_stripe.event("invoice.paid", tenant="t")["id"])
        """,
        "-s",
    )
    result.assert_outcomes(passed=2)
    ids = re.findall(r"ID (evt_\w+)", result.stdout.str())
    assert len(ids) == 2
    assert ids[0] == ids[1]


def test_without_pytest_asyncio_only_the_async_fixtures_fail_naming_the_extra(
    pytester: pytest.Pytester,
) -> None:
    """The plugin loads when pytest-asyncio is missing (or older than 1.4): tests that do not use
    `virtual_clock` run as ever, and the ones that do fail with the pip command to fix it."""
    pytester.makeconftest(
        """
        from harness.testing.asyncio_support import async_fixture, missing_reason

        @async_fixture(reason=lambda: missing_reason(lambda: None))
        async def clock_like():
            return 1
        """
    )
    pytester.makepyfile(
        """
        def test_plain(fake_stripe):
            assert fake_stripe is not None

        def test_needs_it(clock_like):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=1)
    assert (
        "the clock_like fixture needs pytest-asyncio >= 1.4, which is not installed: "
        "pip install 'reliability-harness[pytest]'"
    ) in result.stdout.str()


def test_the_required_pytest_asyncio_version_is_checked() -> None:
    from harness.testing.asyncio_support import missing_reason

    assert missing_reason(lambda: "1.5.0") is None
    assert missing_reason(lambda: "1.4.0") is None
    too_old = missing_reason(lambda: "1.3.0")
    assert too_old is not None
    assert "found 1.3.0" in too_old
    assert "reliability-harness[pytest]" in too_old


def test_workflows_marker_data_dir_keeps_the_history(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    state = tmp_path / "n8n-state"
    sample = Path(__file__).parents[2] / "n8n" / "examples" / "idempotent-intake.json"
    test = f"""
        import pytest
        from harness.fakes.n8n_export import Credential

        @pytest.mark.workflows({str(sample)!r}, data_dir={str(state)!r})
        async def test_once(fake_n8n):
            fake_n8n.credentials.add(Credential("RhWebhookKey0001", "k", "httpHeaderAuth",
                                                {{"name": "X-K", "value": "v"}}))
            async with fake_n8n.client() as client:
                r = await client.post("/webhook/idempotent-intake", headers={{"X-K": "v"}},
                                      json={{"idempotency_key": "k1"}})
            assert r.status_code == 200
            assert len(r.json()) == {{expected}}
        """
    first = _run(pytester, test.replace("{expected}", "1"))
    first.assert_outcomes(passed=1)
    second = _run(pytester, test.replace("{expected}", "0"))  # the history is in the directory
    second.assert_outcomes(passed=1)
    assert (state / "dedupe.jsonl").exists()
