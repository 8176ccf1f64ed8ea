"""Throughput of the fake n8n: served (one uvicorn worker, loopback) and in-process.

    .venv/bin/python benchmarks/fakes_bench.py [--seconds 5] [--connections 10] [--calls 30000]

Served: the fake runs in its own process (`reliability-harness fake-n8n --port 0`, sample
workflows, no faults); the load comes from `wrk` when installed (`apt-get install -y wrk`), else
from raw-socket keep-alive clients in separate processes. Targets: >= 5,000 req/s served (real
n8n 2.8.4: ~127 req/s here), >= 20,000 calls/s through the in-process transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.fakes.n8n import FakeN8n  # noqa: E402

PATH = "/webhook/notify-gap-fill"
KEY = ("X-N8N-Webhook-Key", "local-test-webhook-key")
BODY = b'{"tenant_id":"bench","kind":"notify"}'
SERVED_TARGET = 5_000.0
IN_PROCESS_TARGET = 20_000.0

_LUA = f"""
wrk.method = "POST"
wrk.body = '{BODY.decode()}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["{KEY[0]}"] = "{KEY[1]}"
"""


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "harness", "fake-n8n", "--port", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)  # noqa: S603
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if not line.startswith("fake n8n on "):
        proc.kill()
        raise SystemExit(f"fake n8n did not start: {line!r}")
    return proc, line.split()[3]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wrk(url: str, seconds: float, connections: int) -> tuple[float, int, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA)
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", script.name, url + PATH]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout  # noqa: S603
    Path(script.name).unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(bad.group(1)) if bad else 0, " ".join(cmd)


def _raw_client(args: tuple[str, int, float]) -> tuple[int, int]:
    """One keep-alive connection sending requests back to back until the deadline."""
    host, port, seconds = args
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{KEY[0]}: {KEY[1]}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    done = bad = 0
    deadline = time.monotonic() + seconds
    with socket.create_connection((host, port)) as sock:
        buf = b""
        while time.monotonic() < deadline:
            sock.sendall(request)
            while b"\r\n\r\n" not in buf:
                buf += sock.recv(65536)
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            while len(buf) < length:
                buf += sock.recv(65536)
            buf = buf[length:]
            done += 1
            bad += not head.startswith(b"HTTP/1.1 200")
    return done, bad


def _python_load(url: str, seconds: float, connections: int) -> tuple[float, int, str]:
    host, port = url.removeprefix("http://").split(":")
    with multiprocessing.get_context("spawn").Pool(connections) as pool:
        started = time.monotonic()
        results = pool.map(_raw_client, [(host, int(port), seconds)] * connections)
        elapsed = time.monotonic() - started
    total = sum(r[0] for r in results)
    return total / elapsed, sum(r[1] for r in results), f"{connections} raw-socket processes"


async def _in_process(calls: int) -> tuple[float, float]:
    fake = FakeN8n()
    transport = fake.transport
    headers = [KEY, ("Content-Type", "application/json")]
    url = fake.base_url + PATH
    request = httpx.Request("POST", url, headers=headers, content=BODY)  # reusable: bytes body
    started = time.perf_counter()
    for _ in range(calls):
        response = await transport.handle_async_request(request)
        assert response.status_code == 200
    transport_rate = calls / (time.perf_counter() - started)
    fake.reset()
    async with fake.client() as client:
        started = time.perf_counter()
        for _ in range(calls // 4):
            response = await client.post(PATH, headers=headers, content=BODY)
            assert response.status_code == 200
        client_rate = (calls // 4) / (time.perf_counter() - started)
    return transport_rate, client_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--calls", type=int, default=30_000)
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    args = parser.parse_args(argv)

    proc, url = _start_fake()
    try:
        httpx.get(url + "/healthz", timeout=5).raise_for_status()
        if shutil.which("wrk") and not args.no_wrk:
            rate, bad, how = _wrk(url, args.seconds, args.connections)
        else:
            rate, bad, how = _python_load(url, args.seconds, args.connections)
    finally:
        _stop(proc)
    transport_rate, client_rate = asyncio.run(_in_process(args.calls))
    result = {
        "served_req_per_s": round(rate),
        "served_non_2xx": bad,
        "served_load": how,
        "in_process_transport_calls_per_s": round(transport_rate),
        "in_process_async_client_calls_per_s": round(client_rate),
    }
    print(json.dumps(result, indent=2))
    ok = rate >= SERVED_TARGET and transport_rate >= IN_PROCESS_TARGET and bad == 0
    print(
        f"served {rate:,.0f} req/s (target {SERVED_TARGET:,.0f}), in-process "
        f"{transport_rate:,.0f} calls/s (target {IN_PROCESS_TARGET:,.0f}): "
        f"{'OK' if ok else 'BELOW TARGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
