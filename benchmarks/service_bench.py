"""Service benchmark: the cron check against a bare Starlette route, and the Stripe intake.

Every server is a separate uvicorn process (one worker, httptools + uvloop, access log off) on
127.0.0.1 and an ephemeral port; every load generator is a separate process with a bounded
duration. Run: `.venv/bin/python benchmarks/service_bench.py [--seconds 10]`.

1. `/api/weekly-recap` of the reference app and a bare Starlette route returning the same JSON:
   throughput with wrk (closed loop, 1 thread, 32 connections), alternating rounds, and the
   latency at a fixed 500 req/s (open loop, measured from the scheduled send time).
2. `POST /api/stripe/webhook/{tenant}` on real Postgres with immediate delivery to an n8n
   stand-in process: sustained req/s and p50/p95/p99 at concurrency 32, every event new.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CRON_SECRET = "bench-cron-secret"
SIGNING_SECRET = "whsec_bench"
TENANT = "bench"
REPLY = {"ok": True, "message": "cron reachable"}


# -- servers (run in child processes) --------------------------------------------------------


def _serve(kind: str, port: int, database_url: str, n8n_url: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if kind == "bare":

        async def recap(request: Any) -> JSONResponse:
            return JSONResponse(REPLY)

        app: Any = Starlette(routes=[Route("/api/weekly-recap", recap)])
    elif kind == "n8n":

        async def hook(request: Any) -> JSONResponse:
            await request.body()
            return JSONResponse({"message": "Workflow was started"})

        app = Starlette(routes=[Route("/webhook/{path:path}", hook, methods=["POST"])])
    else:
        from reliability.app import create_app
        from reliability.config import Settings, TenantConfig
        from reliability.store import open_store

        settings = Settings(
            cron_secret=CRON_SECRET,
            n8n_webhook_url=n8n_url,
            n8n_max_concurrency=64,
            n8n_default_concurrency=32,
            tenants={TENANT: TenantConfig(TENANT, stripe_webhook_secrets=(SIGNING_SECRET,))},
        )
        app = create_app(settings, open_store(database_url, max_size=16), close_store=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Server:
    def __init__(self, kind: str, database_url: str = "", n8n_url: str = "") -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(  # noqa: S603 (our own script)
            [sys.executable, __file__, "--serve", kind, str(self.port), database_url, n8n_url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# -- load generators (run in child processes) ------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match:
        await reader.readexactly(int(match.group(1)))
    return status


async def _open_loop(port: int, path: str, rate: float, seconds: float) -> dict[str, Any]:
    """Requests scheduled at a fixed rate over a pool of keep-alive connections."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(16):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    total = int(rate * seconds)

    async def one(scheduled: float) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        try:
            writer.write(request)
            status = await _read_response(reader)
            if status != 200:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)
        finally:
            pool.put_nowait((reader, writer))

    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
    return {"sent": total, "errors": errors, **_percentiles(latencies)}


async def _intake_load(port: int, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed loop: `concurrency` connections each POST fresh signed events until time is up."""
    from reliability.signature import signature_header

    latencies: list[float] = []
    bad = 0
    counter = 0
    run_id = os.urandom(4).hex()
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal bad, counter
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            counter += 1
            event = {
                "id": f"evt_{run_id}_{counter}",
                "object": "event",
                "type": "invoice.paid",
                "created": int(time.time()),
                "data": {"object": {"id": f"in_{counter}", "object": "invoice"}},
            }
            body = json.dumps(event).encode()
            header = signature_header(body, (SIGNING_SECRET,), int(time.time()))
            head = (
                f"POST /api/stripe/webhook/{TENANT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nStripe-Signature: {header}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            writer.write(head + body)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                bad += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "non_200": bad,
        "req_per_s": round(len(latencies) / elapsed, 1),
        **_percentiles(latencies),
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * 1000, 2),
        "p95_ms": round(q[94] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def _load(args: list[str]) -> None:
    import uvloop

    kind, port = args[0], int(args[1])
    if kind == "rate":
        coro = _open_loop(port, args[2], float(args[3]), float(args[4]))
    else:
        coro = _intake_load(port, int(args[2]), float(args[3]))
    print(json.dumps(uvloop.run(coro)))


def _run_load(*args: str, timeout: float) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 (our own script)
        [sys.executable, __file__, "--load", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _wrk(port: int, path: str, seconds: int) -> dict[str, Any]:
    wrk = shutil.which("wrk") or "wrk"
    command = [wrk, "-t1", "-c32", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(  # noqa: S603 (fixed arguments)
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * factor[p99.group(2)] if p99 else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "req_per_s": rps,
        "p99_ms": round(p99_ms, 2),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


# -- the benchmark ---------------------------------------------------------------------------


def _cron(seconds: int, rounds: int) -> None:
    app, bare = _Server("app", "sqlite://:memory:"), _Server("bare")
    path = f"/api/weekly-recap?secret={CRON_SECRET}"
    try:
        for server in (app, bare):  # warm up
            _wrk(server.port, path, 1)
        results: dict[str, list[dict[str, Any]]] = {"app": [], "bare": []}
        for _ in range(rounds):  # alternate, so drift on the shared machine hits both alike
            results["app"].append(_wrk(app.port, path, seconds))
            results["bare"].append(_wrk(bare.port, path, seconds))
        rate = {
            name: _run_load("rate", str(s.port), path, "500", str(seconds), timeout=seconds + 60)
            for name, s in (("app", app), ("bare", bare))
        }
    finally:
        app.stop()
        bare.stop()
    best = {k: max(r["req_per_s"] for r in v) for k, v in results.items()}
    print("cron check (/api/weekly-recap), uvicorn 1 worker, wrk -t1 -c32:")
    for name in ("app", "bare"):
        runs = ", ".join(f"{r['req_per_s']:.0f}" for r in results[name])
        print(f"  {name:5s} req/s per round: {runs}  (best {best[name]:.0f})")
    print(f"  ratio app/bare (best rounds): {best['app'] / best['bare']:.3f}")
    for name in ("app", "bare"):
        r = rate[name]
        print(
            f"  {name:5s} at 500 req/s open loop, {seconds}s: sent {r['sent']}, errors "
            f"{r['errors']}, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms"
        )


def _intake(seconds: int, database_url: str) -> None:
    from harness.testing.postgres import create_schema, drop_schema

    schema = create_schema(database_url, prefix="bench")
    sep = "&" if "?" in database_url else "?"
    url = f"{database_url}{sep}options=-csearch_path%3D{schema}"
    asyncio.run(_migrate(database_url, schema))
    n8n = _Server("n8n")
    try:
        app = _Server("app", url, f"http://127.0.0.1:{n8n.port}/webhook")
        try:
            _run_load("intake", str(app.port), "8", "1", timeout=60)  # warm up, migrate
            r = _run_load("intake", str(app.port), "32", str(seconds), timeout=seconds + 60)
        finally:
            app.stop()
        delivered = _delivered(database_url, schema)
    finally:
        n8n.stop()
        drop_schema(database_url, schema)
    print("stripe intake (POST /api/stripe/webhook/{tenant}), Postgres, concurrency 32:")
    print(
        f"  {r['requests']} requests in {seconds}s: {r['req_per_s']} req/s, non-200 "
        f"{r['non_200']}, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms"
    )
    print(f"  outbox rows delivered to the n8n stand-in by shutdown: {delivered}")


async def _migrate(database_url: str, schema: str) -> None:
    from reliability.store import open_postgres

    store = open_postgres(database_url, schema=schema, max_size=1)
    try:
        await store.migrate()
    finally:
        await store.close()


def _delivered(database_url: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT count(*) FILTER (WHERE done_at IS NOT NULL), count(*) FROM "{schema}".outbox'
        ).fetchone()
    return "unknown" if row is None else f"{row[0]} of {row[1]}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        _serve(argv[1], int(argv[2]), argv[3], argv[4])
        return 0
    if argv[:1] == ["--load"]:
        _load(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "RELIABILITY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks service` passes names
    if shutil.which("wrk") is None:
        print("wrk is needed for the throughput part: apt-get install -y wrk", file=sys.stderr)
        return 2
    _cron(args.seconds, args.rounds)
    _intake(args.seconds, args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
