"""Slow clients beyond the file-descriptor limit: does `/healthz` keep answering?

Starts `reliability-harness serve` (SQLite store, so nothing else is needed) under
`ulimit -n 1024`, opens 1,100 slowloris clients (each trickles a header line every second and
reconnects when the server closes it) and probes `/healthz` on fresh connections for the whole
attack. Prints the share of probes answered 200 within 2 s; exits 1 below 90%.

    python -m benchmarks slow_clients            # 1,100 clients, ulimit -n 1024, 20 s
    python benchmarks/slow_clients_bench.py --clients 300 --fd-limit 256 --seconds 10

The reduced form runs in CI as `tests/service/test_abuse.py` (300 clients, `ulimit -n 256`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

GOAL = 0.9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(port: int, fd_limit: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "RELIABILITY_"))}
    env["CRON_SECRET"] = "bench-cron-secret"
    argv = [sys.executable, "-m", "harness", "serve", "--port", str(port), "--no-access-log"]
    argv += ["--database-url", f"sqlite:///{workdir}/bench.db"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    return subprocess.Popen(  # noqa: S603 (our own command)
        argv,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "serve.log").open("wb"),
        preexec_fn=limit,
    )


async def _slow_client(port: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                try:
                    await asyncio.wait_for(reader.read(256), timeout=1.0)
                    break  # answered (408/503) or closed: come back, as an attacker would
                except TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
        except OSError:
            await asyncio.sleep(0.2)
        finally:
            if writer is not None:
                writer.close()


async def _probe(base: str, seconds: float) -> tuple[int, int]:
    ok = total = 0
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=2.0, limits=limits) as client:
        while time.monotonic() < end:
            total += 1
            with contextlib.suppress(httpx.HTTPError):
                ok += (await client.get(f"{base}/healthz")).status_code == 200
            await asyncio.sleep(0.25)
    return ok, total


async def _attack(port: int, clients: int, seconds: float) -> tuple[int, int]:
    stop = asyncio.Event()
    attackers = [asyncio.create_task(_slow_client(port, stop)) for _ in range(clients)]
    await asyncio.sleep(2)  # let them connect and fill what they can
    try:
        return await _probe(f"http://127.0.0.1:{port}", seconds)
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)


def _wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # poll until it answers (bounded)
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        if proc.poll() is not None:
            raise SystemExit("serve exited before it answered")
        time.sleep(0.1)
    raise SystemExit("serve did not come up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1100)
    parser.add_argument("--fd-limit", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.clients + 256
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print(f"needs {need} file descriptors here; the hard limit is {hard}", file=sys.stderr)
            return 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as tmp:
        port = _free_port()
        proc = _start(port, args.fd_limit, Path(tmp))
        try:
            _wait_up(port, proc)
            ok, total = asyncio.run(_attack(port, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    share = ok / max(1, total)
    print(
        f"slow clients: {args.clients} against ulimit -n {args.fd_limit}: "
        f"{ok}/{total} /healthz probes answered 200 ({share:.0%}; goal >= {GOAL:.0%})"
    )
    return 0 if share >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
