"""Stripe intake + delivery of `reliability-harness serve` against a minimal durable receiver.

The anchor (issue 20): a Starlette app under the same uvicorn settings as `serve` (the guarded
httptools protocol, JSON access log, keep-alive 5 s), one route that verifies the Stripe v1
signature (300 s tolerance, the official `stripe` package), parses the event and in ONE
transaction inserts `(tenant, event id)` with `ON CONFLICT DO NOTHING` plus one outbox row, then
answers 200; a psycopg async pool of 16; no delivery at all.

Every server, the n8n stand-in (a raw asyncio HTTP server in its own process answering 200 at
once, counting calls per idempotency key) and the load generator run as separate processes on
127.0.0.1. The load is wrk (1 thread, 32 connections) over pre-signed unique `invoice.paid`
events, spread over 20 tenants; rows committed and delivered are counted in the database in the
same window. The store is `RELIABILITY_BENCH_DATABASE_URL`, else an embedded PostgreSQL 16.

Parts: (1) throughput, anchor and serve in alternating rounds; (2) one tenant at limit 5 with a
20 ms n8n: the delivery rate against limit / latency, and whether the backlog drains with no cron
drain; (3) open-loop latency at half of serve's saturation rate, from the scheduled send time, and
from the intake answer to the n8n call; (4) RSS after 1,000 and after `--rss-events` events;
(5) `serve --workers 2` against one worker, alternating rounds.
Run: `.venv/bin/python benchmarks/intake_bench.py [--seconds 5] [--rounds 3] [--parts 1,2,3,4,5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path then
    sys.path.insert(0, str(ROOT))

from benchmarks.service_bench import _free_port, _percentiles  # noqa: E402

SECRET = "whsec_bench"
CRON = "bench-cron"
TENANTS = [f"t{i:02d}" for i in range(20)]
WORKFLOW = "weekly-recap"
CHUNK = 20_000
"""Events signed at a time: all of them are sent well inside the 300 s tolerance."""

_ANCHOR_SQL = (
    "INSERT INTO processed_events (tenant_id, event_id, processed_at) VALUES (%s, %s, now())"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO outbox (id, tenant_id, workflow, payload, idempotency_key, event_id,"
    " next_attempt_at, created_at) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, now(), now())",
)

_LUA = """
local lines, i, n = {}, 0, 0
for line in io.lines(os.getenv("BENCH_EVENTS")) do
  local tenant, sig, body = line:match("([^\\t]*)\\t([^\\t]*)\\t(.*)")
  lines[#lines + 1] = wrk.format("POST", "/api/stripe/webhook/" .. tenant,
    {["Content-Type"] = "application/json", ["Stripe-Signature"] = sig}, body)
end
n = #lines
request = function()
  i = i % n + 1
  return lines[i]
end
"""


# -- servers (child processes) ---------------------------------------------------------------


def _uvicorn_common(port: int) -> dict[str, Any]:
    """What `serve` passes to uvicorn (harness/cli/serve.py), for the anchor."""
    from reliability.logs import uvicorn_log_config
    from reliability.server import GuardedHttpProtocol, connection_cap, fd_soft_limit

    GuardedHttpProtocol.configure(
        header_timeout=10.0, max_connections=connection_cap(fd_soft_limit())
    )
    return {
        "host": "127.0.0.1",
        "port": port,
        "log_config": uvicorn_log_config(secrets=[SECRET, CRON]),
        "access_log": True,
        "proxy_headers": False,
        "server_header": False,
        "http": GuardedHttpProtocol,
        "timeout_keep_alive": 5,
    }


def _anchor(port: int, url: str) -> None:
    import stripe
    import uvicorn
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    pool = AsyncConnectionPool(url, max_size=16, open=False, kwargs={"autocommit": True})

    async def hook(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        body = await request.body()
        header = request.headers.get("stripe-signature", "")
        try:
            stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, tolerance=300)
            event = json.loads(body)
        except (stripe.SignatureVerificationError, ValueError):
            return Response(b'{"ok":false}', status_code=400, media_type="application/json")
        key = f"{tenant}:{event['id']}:{WORKFLOW}"
        payload = json.dumps({"tenant_id": tenant, "event_id": event["id"], "object": event})
        conn: AsyncConnection[Any]
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_ANCHOR_SQL[0], (tenant, event["id"]))
            if cur.rowcount == 1:
                await conn.execute(_ANCHOR_SQL[1], (tenant, WORKFLOW, payload, key, event["id"]))
        return Response(b'{"ok":true}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await pool.open()
        yield
        await pool.close()

    routes = [Route("/api/stripe/webhook/{tenant}", hook, methods=["POST"])]
    uvicorn.run(Starlette(routes=routes, lifespan=lifespan), **_uvicorn_common(port))


class _StandIn(asyncio.Protocol):
    """n8n answering 200 after `delay` seconds; records each key's first arrival (monotonic)."""

    delay = 0.0
    arrivals: dict[str, float] = {}
    calls = 0
    duplicates = 0
    _OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's transports are not asyncio.Transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            fields = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])
            }
            size = int(fields.get("content-length", "0"))
            if len(self.buffer) < end + 4 + size:
                return
            self.buffer = self.buffer[end + 4 + size :]
            self._answer(head.split(" ", 2)[1], fields.get("idempotency-key", ""))

    def _answer(self, path: str, key: str) -> None:
        cls = type(self)
        if path == "/stats":
            body = json.dumps(
                {"calls": cls.calls, "duplicates": cls.duplicates, "arrivals": cls.arrivals}
            ).encode()
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            self.transport.write(head + body)
            return
        cls.calls += 1
        if key in cls.arrivals:
            cls.duplicates += 1
        else:
            cls.arrivals[key] = time.monotonic()
        if cls.delay:
            asyncio.get_running_loop().call_later(cls.delay, self._write_ok)
        else:
            self.transport.write(self._OK)

    def _write_ok(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self._OK)


def _stand_in(port: int, delay_ms: float) -> None:
    import uvloop

    _StandIn.delay = delay_ms / 1000

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_StandIn, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


class _Proc:
    """A child process listening on `port`, started and awaited; stopped by SIGTERM."""

    def __init__(self, command: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.proc = subprocess.Popen(  # noqa: S603 (our own commands)
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 "):  # the app answers (any status)
                        return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[2:4]} did not start") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _me(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


def _start_stand_in(delay_ms: float = 0.0) -> _Proc:
    port = _free_port()
    return _Proc(_me("--stand-in", str(port), str(delay_ms)), port)


def _stand_in_stats(n8n: _Proc) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", n8n.port), timeout=10) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            size = int(head.split(b"content-length: ")[1].split(b"\r\n")[0]) if body else -1
            if size >= 0 and len(body) >= size:
                stats: dict[str, Any] = json.loads(body)
                return stats


def _start_serve(
    url: str, n8n: _Proc, tenants_file: Path, workers: int = 1, fleet: bool = True
) -> _Proc:
    port = _free_port()
    command = [sys.executable, "-m", "harness", "serve", "--port", str(port)]
    command += ["--database-url", url, "--tenants", str(tenants_file), "--workers", str(workers)]
    env = {
        "CRON_SECRET": CRON,
        "N8N_WEBHOOK_URL": f"http://127.0.0.1:{n8n.port}/webhook",
        "RELIABILITY_FLEET_LIMIT": "true" if fleet else "false",
    }
    return _Proc(command, port, env)


def _tenants_file(folder: Path, tenants: list[str], limit: int = 5) -> Path:
    path = folder / f"tenants-{len(tenants)}-{limit}.json"
    entries = [
        {"tenant_id": t, "concurrency_limit": limit, "stripe_webhook_secrets": [SECRET]}
        for t in tenants
    ]
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


# -- the database -----------------------------------------------------------------------------


@contextlib.contextmanager
def _database() -> Iterator[str]:
    url = os.environ.get("RELIABILITY_BENCH_DATABASE_URL", "").strip()
    if url:
        yield url
        return
    from harness.live.embedded import embedded_postgres

    with embedded_postgres(None) as pg:
        yield pg.url


class _Schema:
    """A fresh, migrated schema: its URL for servers, and counts of its outbox."""

    def __init__(self, url: str) -> None:
        from harness.pgschema import create_schema

        self.base = url
        self.name = create_schema(url, "intakebench")
        sep = "&" if "?" in url else "?"
        self.url = f"{url}{sep}options=-csearch_path%3D{self.name}"
        asyncio.run(self._migrate())

    async def _migrate(self) -> None:
        from reliability.store import open_postgres

        store = open_postgres(self.base, schema=self.name, max_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()

    def counts(self) -> dict[str, int]:
        """Rows committed, delivered, claimed-not-done, due-and-free, and dead letters."""
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            row = conn.execute(
                f"""SELECT count(*), count(done_at),
                      count(*) FILTER (WHERE done_at IS NULL AND locked_until > now()),
                      count(*) FILTER (WHERE done_at IS NULL AND (locked_until IS NULL
                                       OR locked_until <= now())),
                      (SELECT count(*) FROM "{self.name}".n8n_dlq)
                    FROM "{self.name}".outbox"""
            ).fetchone()
        assert row is not None
        keys = ("committed", "delivered", "claimed", "free", "dead")
        return dict(zip(keys, (int(v) for v in row), strict=True))

    def drop(self) -> None:
        from harness.pgschema import drop_schema

        drop_schema(self.base, self.name)


# -- load -------------------------------------------------------------------------------------


class _Events:
    """Unique, freshly signed events, spread round-robin over `tenants`."""

    def __init__(self, folder: Path, tenants: list[str]) -> None:
        self.folder = folder
        self.tenants = tenants
        self.run = os.urandom(4).hex()
        self.next = 0

    def batch(self, n: int) -> list[tuple[str, str, str]]:
        from reliability.signature import signature_header

        now = int(time.time())
        out = []
        for i in range(self.next, self.next + n):
            tenant = self.tenants[i % len(self.tenants)]
            body = json.dumps(
                {
                    "id": f"evt_{self.run}_{i}",
                    "object": "event",
                    "type": "invoice.paid",
                    "created": now,
                    "data": {"object": {"id": f"in_{i}", "object": "invoice"}},
                },
                separators=(",", ":"),
            )
            out.append((tenant, signature_header(body.encode(), (SECRET,), now), body))
        self.next += n
        return out

    def file(self, n: int) -> Path:
        path = self.folder / f"events-{self.run}-{self.next}.tsv"
        path.write_text("".join(f"{t}\t{s}\t{b}\n" for t, s, b in self.batch(n)))
        return path


def _wrk(port: int, events: Path, *, seconds: float) -> subprocess.Popen[str]:
    script = events.with_suffix(".lua")
    script.write_text(_LUA)
    wrk = shutil.which("wrk") or "wrk"
    command = [wrk, "-t1", "-c32", f"-d{math.ceil(seconds)}s", "-s", str(script)]
    return subprocess.Popen(  # noqa: S603 (fixed arguments)
        [*command, f"http://127.0.0.1:{port}"],
        env={**os.environ, "BENCH_EVENTS": str(events)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _window(
    server: _Proc, schema: _Schema, events: _Events, seconds: float, warmup: float = 1.0
) -> dict[str, float]:
    """wrk for warmup + seconds; committed/s and delivered/s counted over the last `seconds`."""
    load = _wrk(
        server.port,
        events.file(int(12_000 * (seconds + warmup + 1))),
        seconds=seconds + warmup + 0.5,
    )
    time.sleep(warmup)
    before, t0 = schema.counts(), time.monotonic()
    time.sleep(seconds)
    after, t1 = schema.counts(), time.monotonic()
    out, _ = load.communicate(timeout=60)
    non2xx = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    elapsed = t1 - t0
    return {
        "committed": (after["committed"] - before["committed"]) / elapsed,
        "delivered": (after["delivered"] - before["delivered"]) / elapsed,
        "non2xx": non2xx,
    }


def _settle(schema: _Schema, seconds: float) -> tuple[dict[str, int], float]:
    """Wait (no drain) until every committed row is delivered or `seconds` pass."""
    started = time.monotonic()
    while True:
        counts = schema.counts()
        waited = time.monotonic() - started
        if counts["delivered"] + counts["dead"] >= counts["committed"] or waited > seconds:
            return counts, waited
        time.sleep(0.2)


# -- the parts --------------------------------------------------------------------------------


def _throughput(url: str, folder: Path, seconds: float, rounds: int) -> float:
    anchor_schema, serve_schema = _Schema(url), _Schema(url)
    n8n = _start_stand_in()
    port = _free_port()
    anchor = _Proc(_me("--anchor", str(port), anchor_schema.url), port)
    serve = _start_serve(serve_schema.url, n8n, _tenants_file(folder, TENANTS))
    events = _Events(folder, TENANTS)
    runs: dict[str, list[dict[str, float]]] = {"anchor": [], "serve": []}
    try:
        for server, schema in ((anchor, anchor_schema), (serve, serve_schema)):
            _window(server, schema, events, 1.0, warmup=0.5)  # warm up
        for r in range(rounds):
            order = [("anchor", anchor, anchor_schema), ("serve", serve, serve_schema)]
            for name, server, schema in order if r % 2 == 0 else order[::-1]:
                runs[name].append(_window(server, schema, events, seconds))
        counts, waited = _settle(serve_schema, 60)
        stats = _stand_in_stats(n8n)
    finally:
        for p in (anchor, serve, n8n):
            p.stop()
        anchor_schema.drop()
        serve_schema.drop()
    anchor_rate = statistics.median(r["committed"] for r in runs["anchor"])
    committed = statistics.median(r["committed"] for r in runs["serve"])
    delivered = statistics.median(r["delivered"] for r in runs["serve"])
    print(f"1. throughput, 20 tenants (limit 5 each), wrk -t1 -c32, {seconds:g} s windows:")
    for name in ("anchor", "serve"):
        line = ", ".join(f"{r['committed']:.0f}/{r['delivered']:.0f}" for r in runs[name])
        bad = sum(r["non2xx"] for r in runs[name])
        print(f"   {name:6s} committed/delivered per s by round: {line}  (non-2xx {bad})")
    print(
        f"   medians: anchor committed {anchor_rate:.0f}/s; serve committed {committed:.0f}/s "
        f"({committed / anchor_rate:.2f}x), delivered {delivered:.0f}/s "
        f"({delivered / anchor_rate:.2f}x) [goal >= 0.70x each]"
    )
    lost = counts["committed"] - counts["delivered"] - counts["dead"]
    print(
        f"   after the load, {waited:.1f} s without a drain: {counts['delivered']} of "
        f"{counts['committed']} delivered, undelivered {lost}, dead letters {counts['dead']}, "
        f"duplicate calls at n8n {stats['duplicates']}"
    )
    return committed


def _backlog(url: str, folder: Path, bursts: int, burst_seconds: float, latency_ms: float) -> None:
    schema = _Schema(url)
    n8n = _start_stand_in(latency_ms)
    tenant = ["solo"]
    serve = _start_serve(schema.url, n8n, _tenants_file(folder, tenant, 5))
    events = _Events(folder, tenant)
    ceiling = 5 / (latency_ms / 1000)
    try:
        start = schema.counts()
        t0 = time.monotonic()
        for _ in range(bursts):
            _wrk(
                serve.port, events.file(int(12_000 * burst_seconds)), seconds=burst_seconds
            ).communicate(timeout=60)
        burst = schema.counts()
        t1 = time.monotonic()
        samples = []
        while time.monotonic() - t1 < 60:
            time.sleep(1.0)
            now = schema.counts()
            samples.append((time.monotonic() - t1, now))
            if now["delivered"] >= now["committed"]:
                break
        stats = _stand_in_stats(n8n)
    finally:
        serve.stop()
        n8n.stop()
        schema.drop()
    accepted = burst["committed"] - start["committed"]
    during = (burst["delivered"] - start["delivered"]) / (t1 - t0)
    end_t, end = samples[-1]
    idle_rate = (end["delivered"] - burst["delivered"]) / end_t
    print(
        f"2. one tenant, limit 5, n8n answering after {latency_ms:g} ms (ceiling "
        f"{ceiling:.0f}/s), {bursts} bursts of {burst_seconds:g} s:"
    )
    print(
        f"   accepted {accepted} at {accepted / (t1 - t0):.0f}/s; delivered {during:.0f}/s "
        f"during the bursts ({during / ceiling:.2f}x the ceiling)"
    )
    print(
        f"   then {end_t:.0f} s with no drain: delivered {idle_rate:.0f}/s "
        f"({idle_rate / ceiling:.2f}x); left {end['committed'] - end['delivered']} "
        f"(claimed {end['claimed']}, released {end['free']}); duplicates {stats['duplicates']}"
    )


async def _open_loop(port: int, lines: list[tuple[str, str, str]], rate: float) -> dict[str, Any]:
    """Send `lines` at `rate`/s over 64 keep-alive connections; latency from the scheduled
    time; when each answer came (monotonic) per idempotency key."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    answered: dict[str, float] = {}
    bad = 0

    async def one(scheduled: float, tenant: str, sig: str, body: str) -> None:
        nonlocal bad
        reader, writer = await pool.get()
        try:
            raw = body.encode()
            writer.write(
                f"POST /api/stripe/webhook/{tenant} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                f"application/json\r\nStripe-Signature: {sig}\r\nContent-Length: {len(raw)}"
                "\r\n\r\n".encode()
                + raw
            )
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(size)
            done = time.monotonic()
            bad += head[9:12] != b"200"
            latencies.append(done - scheduled)
            event = json.loads(body)["id"]
            answered[f"{tenant}:{event}:{WORKFLOW}"] = done
        finally:
            pool.put_nowait((reader, writer))

    start = time.monotonic() + 0.1
    tasks = []
    for i, line in enumerate(lines):
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled, *line)))
    await asyncio.gather(*tasks)
    return {"non_200": bad, "answered": answered, **_percentiles(latencies)}


def _latency(url: str, folder: Path, rate: float, seconds: float) -> None:
    schema = _Schema(url)
    n8n = _start_stand_in()
    serve = _start_serve(schema.url, n8n, _tenants_file(folder, TENANTS))
    events = _Events(folder, TENANTS)
    try:
        _send(serve, schema, events, 500)  # warm up: pool, slots, code paths
        _settle(schema, 30)
        lines_file = folder / "open-loop.json"
        lines_file.write_text(json.dumps(events.batch(int(rate * seconds))))
        out = subprocess.run(  # noqa: S603 (our own script)
            _me("--open-loop", str(serve.port), str(lines_file), str(rate)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        _settle(schema, 30)
        arrivals = _stand_in_stats(n8n)["arrivals"]
    finally:
        serve.stop()
        n8n.stop()
        schema.drop()
    gaps = [arrivals[k] - t for k, t in result["answered"].items() if k in arrivals]
    to_call = _percentiles([max(0.0, g) for g in gaps])
    print(
        f"3. open loop at {rate:.0f} req/s (half of serve's saturation) for {seconds:g} s, "
        "from the scheduled send time:"
    )
    print(
        f"   intake answer p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max "
        f"{result['max_ms']} ms (non-200 {result['non_200']}) [goal p99 <= 25 ms]"
    )
    print(
        f"   answer -> n8n call ({len(gaps)} of {len(result['answered'])} seen): p50 "
        f"{to_call.get('p50_ms')} ms, p99 {to_call.get('p99_ms')} ms, max "
        f"{to_call.get('max_ms')} ms [goal p99 <= 50 ms]"
    )


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _send(serve: _Proc, schema: _Schema, events: _Events, n: int) -> None:
    """Commit `n` more events through wrk (stopped once the database has them all)."""
    target = schema.counts()["committed"] + n
    while n > 0:
        chunk = min(n, CHUNK)
        load = _wrk(serve.port, events.file(chunk), seconds=600)
        goal = target - n + chunk
        while schema.counts()["committed"] < goal and load.poll() is None:
            time.sleep(0.1)
        load.send_signal(signal.SIGINT)
        load.communicate(timeout=30)
        n -= chunk


def _memory(url: str, folder: Path, total: int) -> None:
    schema = _Schema(url)
    n8n = _start_stand_in()
    serve = _start_serve(schema.url, n8n, _tenants_file(folder, TENANTS))
    events = _Events(folder, TENANTS)
    try:
        _send(serve, schema, events, 1000)
        _settle(schema, 30)
        first = _rss_kib(serve.pid)
        _send(serve, schema, events, total - 1000)
        counts, _ = _settle(schema, 60)
        last = _rss_kib(serve.pid)
    finally:
        serve.stop()
        n8n.stop()
        schema.drop()
    print(
        f"4. RSS of the serving process: {first / 1024:.1f} MiB after 1,000 events, "
        f"{last / 1024:.1f} MiB after {counts['committed']:,} ({last / first - 1:+.1%}) "
        "[goal within 20%]"
    )


def _workers(url: str, folder: Path, seconds: float, rounds: int) -> None:
    rates: dict[int, list[float]] = {1: [], 2: []}
    events = _Events(folder, TENANTS)
    tenants = _tenants_file(folder, TENANTS)
    for r in range(rounds):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            schema = _Schema(url)
            n8n = _start_stand_in()
            serve = _start_serve(schema.url, n8n, tenants, workers=workers)
            try:
                _window(serve, schema, events, 2.0, warmup=1.0)  # both workers warm
                rates[workers].append(_window(serve, schema, events, seconds)["delivered"])
            finally:
                serve.stop()
                n8n.stop()
                schema.drop()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"5. serve --workers 2 against 1: delivered/s by round 1: "
        f"{', '.join(f'{x:.0f}' for x in rates[1])}; 2: {', '.join(f'{x:.0f}' for x in rates[2])}; "
        f"median ratio {two / one:.2f}x [goal >= 1.6x]"
    )


def main(argv: list[str]) -> int:
    if argv[:1] == ["--anchor"]:
        _anchor(int(argv[1]), argv[2])
        return 0
    if argv[:1] == ["--stand-in"]:
        _stand_in(int(argv[1]), float(argv[2]))
        return 0
    if argv[:1] == ["--open-loop"]:
        import uvloop

        lines = json.loads(Path(argv[2]).read_text())
        print(json.dumps(uvloop.run(_open_loop(int(argv[1]), lines, float(argv[3])))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="1,2,3,4,5")
    parser.add_argument("--rss-events", type=int, default=100_000)
    parser.add_argument(
        "--saturation",
        type=float,
        default=0.0,
        help="serve's committed/s for part 3 (default: part 1's figure)",
    )
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks intake` passes names
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    parts = {int(p) for p in args.parts.split(",")}
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    with _database() as url, tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        folder = Path(tmp)
        saturation = args.saturation
        if 1 in parts:
            saturation = _throughput(url, folder, args.seconds, args.rounds) or saturation
        if 2 in parts:
            _backlog(url, folder, 3, 2.0, 20.0)
        if 3 in parts and saturation > 0:
            _latency(url, folder, saturation / 2, args.seconds)
        if 4 in parts:
            _memory(url, folder, args.rss_events)
        if 5 in parts:
            _workers(url, folder, args.seconds, max(2, args.rounds - 1))
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
