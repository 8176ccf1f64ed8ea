"""Fleet limit benchmark: intake-to-delivery throughput with the fleet-wide tenant limit on and
off (`RELIABILITY_FLEET_LIMIT`), side by side in one run, on real PostgreSQL.

Each round posts `--events` validly signed Stripe events to the reference app (in-process, over
ASGI, `--concurrency` at a time) and waits until every delivery is done at an n8n stand-in that
answers after `--latency` ms; rounds alternate on/off on fresh schemas so drift hits both. The
figure is deliveries per second from the first post to the last delivery, and the cost is the
median "off" throughput over the median "on" one.
Run: `.venv/bin/python benchmarks/fleet_bench.py [--events 1000] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

import httpx
import stripe

from harness.pgschema import create_schema, drop_schema
from reliability.app import create_app
from reliability.config import Settings, TenantConfig
from reliability.store import open_postgres

TENANT = "bench"
SECRET = "whsec_bench"


async def _round(url: str, *, fleet: bool, events: int, concurrency: int, latency: float) -> float:
    schema = create_schema(url, "fleetbench")
    delivered = 0

    async def n8n(request: httpx.Request) -> httpx.Response:
        nonlocal delivered
        await asyncio.sleep(latency)
        delivered += 1
        return httpx.Response(200, json={"message": "Workflow was started"})

    settings = Settings(
        cron_secret="bench",
        n8n_webhook_url="http://n8n.bench/webhook",
        n8n_default_concurrency=16,
        n8n_max_concurrency=16,
        reliability_fleet_limit=fleet,
        tenants={TENANT: TenantConfig(TENANT, stripe_webhook_secrets=(SECRET,))},
    )
    store = open_postgres(url, schema=schema, max_size=16)
    try:
        await store.migrate()
        app = create_app(settings, store, transport=httpx.MockTransport(n8n))
        transport = httpx.ASGITransport(app=app)
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:

            async def post(i: int) -> None:
                body = json.dumps(
                    {
                        "id": f"evt_{i}",
                        "object": "event",
                        "type": "invoice.paid",
                        "created": 1_700_000_000,
                        "data": {"object": {"id": f"in_{i}", "object": "invoice"}},
                    }
                )
                header = stripe.WebhookSignature.generate_signature_header(
                    body, SECRET, timestamp=int(time.time())
                )
                async with gate:
                    r = await client.post(
                        f"/api/stripe/webhook/{TENANT}",
                        content=body,
                        headers={"stripe-signature": str(header)},
                    )
                r.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(events)))
            # The answers hand the rows to the delivery pool: wait until it has seen them through.
            await app.state.service.pool.wait_idle()
            elapsed = time.perf_counter() - started
            await app.state.service.pool.close(grace=1.0)
        await app.state.service.dispatcher.aclose()
        pending = await store.outbox_rows()
        if pending or delivered != events:
            raise SystemExit(f"round incomplete: {delivered} delivered, {len(pending)} pending")
        return events / elapsed
    finally:
        await store.close()
        drop_schema(url, schema)


async def _main(args: argparse.Namespace) -> int:
    url = os.environ.get("RELIABILITY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    results: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for fleet in (r % 2 == 0, r % 2 != 0):
            rate = await _round(
                url,
                fleet=fleet,
                events=args.events,
                concurrency=args.concurrency,
                latency=args.latency / 1000,
            )
            results[fleet].append(rate)
            print(f"round {r + 1} fleet {'on ' if fleet else 'off'}: {rate:7.1f} deliveries/s")
    on, off = statistics.median(results[True]), statistics.median(results[False])
    cost = 1 - on / off
    print(f"median: on {on:.1f}/s, off {off:.1f}/s, cost {cost:+.1%} (budget 10%)")
    return 0 if cost < 0.10 else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=20.0, help="n8n's answer time, ms")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
