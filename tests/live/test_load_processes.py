"""The supervisor stops whole process groups: on stop, on SIGKILL, and when the harness dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from process_support import running, wait_for

from harness.live.errors import StackError
from harness.live.processes import Supervisor, ensure_port_free
from harness.live.stack import child_env, make_tenants, resolve_database_url, schema_url

_PARENT = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    if "ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(f"grandchild {child.pid}", flush=True)
    time.sleep(120)
    """
)


def grandchild_pid(log: Path) -> int:
    assert wait_for(lambda: "grandchild" in log.read_text()), log.read_text()
    return int(log.read_text().split("grandchild ")[1].split()[0])


@pytest.mark.parametrize("ignore_term", [False, True])
def test_stop_all_ends_the_whole_group(tmp_path: Path, ignore_term: bool) -> None:
    events: list[str] = []
    sup = Supervisor(tmp_path, grace=0.5, on_event=events.append)
    argv = [sys.executable, "-c", _PARENT] + (["ignore-term"] if ignore_term else [])
    proc = sup.start("parent", argv, env=child_env())
    grandchild = grandchild_pid(proc.log_path)
    assert running(proc.pid)
    assert running(grandchild)
    sup.stop_all()
    assert not running(proc.pid)
    assert wait_for(lambda: not running(grandchild))
    assert sup.processes == ()
    assert any(e.startswith("stopped parent") for e in events)


def test_kill_is_a_sigkill_of_the_group(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path, grace=5.0)
    proc = sup.start("victim", [sys.executable, "-c", _PARENT, "ignore-term"], env=child_env())
    grandchild = grandchild_pid(proc.log_path)
    sup.kill(proc)
    assert proc.popen.returncode == -signal.SIGKILL
    assert wait_for(lambda: not running(grandchild))
    sup.stop_all()


def test_children_die_with_the_harness(tmp_path: Path) -> None:
    """Even a SIGKILLed harness leaves nothing behind (PR_SET_PDEATHSIG on Linux)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from harness.live.stack import Supervisor, child_env
        sup = Supervisor(Path({str(tmp_path)!r}))
        argv = [sys.executable, "-c", "import time; time.sleep(120)"]
        p = sup.start("child", argv, env=child_env())
        print(p.pid, flush=True)
        time.sleep(120)
        """
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert harness.stdout is not None
    child = int(harness.stdout.readline())
    assert running(child)
    harness.kill()
    harness.wait(timeout=10)
    assert wait_for(lambda: not running(child))


def test_logs_of_a_failed_child_are_kept(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    proc = sup.start("noisy", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], env={})
    proc.popen.wait(timeout=10)
    assert not proc.alive()
    assert "boom" in proc.tail()
    sup.stop_all()


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(StackError, match=f"--service-port: port {port} on 127.0.0.1 is in use"):
            ensure_port_free(port, what="--service-port")
    with pytest.raises(StackError, match=r"1\.\.65535"):
        ensure_port_free(70000, what="--n8n-port")


def test_child_env_leaves_the_service_settings_to_the_env_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("N8N_MAX_RETRIES", "9")
    monkeypatch.setenv("RELIABILITY_TEST_DATABASE_URL", "postgresql://x")
    monkeypatch.setenv("CRON_SECRET", "leak")
    env = child_env({"EXTRA": "1"})
    assert not {"N8N_MAX_RETRIES", "RELIABILITY_TEST_DATABASE_URL", "CRON_SECRET"} & set(env)
    assert env["EXTRA"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_database_url_resolution_and_schema_options() -> None:
    assert resolve_database_url("postgresql://a/b", {}) == "postgresql://a/b"
    env = {"RELIABILITY_TEST_DATABASE_URL": "postgresql://env/db"}
    assert resolve_database_url(None, env) == "postgresql://env/db"
    assert resolve_database_url(None, {}) == "postgresql://postgres@127.0.0.1:5432/test"
    url = schema_url("postgresql://u@h:5432/db?sslmode=disable&options=-cfoo%3D1", "load_x")
    assert url == "postgresql://u@h:5432/db?sslmode=disable&options=-csearch_path%3Dload_x"


def test_tenants_are_seeded() -> None:
    assert make_tenants(3, 7) == make_tenants(3, 7)
    assert make_tenants(3, 7) != make_tenants(3, 8)
    assert [t.tenant_id for t in make_tenants(2, 0)] == ["tenant-000", "tenant-001"]
    with pytest.raises(StackError):
        make_tenants(0, 0)
