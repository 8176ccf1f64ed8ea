"""`reliability-harness fake-n8n` and `reliability-harness fake-stripe send`: aim the fakes at
your own app from a shell.

    reliability-harness fake-n8n --port 5678 --workflows n8n/workflows --faults faults.yaml
    reliability-harness fake-stripe send --to http://127.0.0.1:8000/api/stripe/webhook \\
        --secret-file whsec.txt --scenario duplicates --count 5 --seed 7

The signing secret comes from `--secret-file` or `STRIPE_WEBHOOK_SECRET`, so it never needs the
command line (`--secret` still works, visible in `ps`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from harness.cli.exits import BROKEN, INTERNAL, OK
from harness.fakes.faults import FaultProfileError, load_profile
from harness.fakes.n8n import DEFAULT_WORKFLOWS, FakeN8n, FakeN8nServer
from harness.fakes.n8n_export import Credential, WorkflowError
from harness.fakes.stripe import EVENT_TYPES, SCENARIOS, DeliveryAnswer, FakeStripe

__all__ = ["SECRET_VAR", "SendVerdict", "judge_answers", "register", "signing_secret"]

SECRET_VAR = "STRIPE_WEBHOOK_SECRET"


def register(subparsers: Any) -> None:
    """Add the `fake-n8n` and `fake-stripe` subcommands."""
    _register_n8n(subparsers)
    _register_stripe(subparsers)


def _register_n8n(subparsers: Any) -> None:
    n8n = subparsers.add_parser(
        "fake-n8n",
        help="serve a fault-injecting fake n8n",
        description="Serve n8n's webhook surface from exported workflows, with injected faults, "
        "a request journal (GET /__journal) and a control API (GET/PUT /__faults, POST /__reset).",
    )
    n8n.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    n8n.add_argument("--port", type=int, default=5678, help="port (default 5678; 0: any free)")
    n8n.add_argument(
        "--workflows",
        action="append",
        metavar="DIR_OR_FILE",
        help=f"n8n workflow export(s), repeatable (default {DEFAULT_WORKFLOWS}); a directory's "
        "credentials.json is loaded with it unless --credentials, --header-auth or --basic-auth "
        "is given",
    )
    n8n.add_argument(
        "--credentials",
        metavar="FILE_OR_DIR",
        help="`n8n export:credentials --decrypted` output (a file, or the --separate directory)",
    )
    n8n.add_argument(
        "--header-auth",
        action="append",
        default=[],
        metavar="CREDENTIAL=HEADER:VALUE",
        help="a header-auth credential by name, repeatable",
    )
    n8n.add_argument(
        "--basic-auth",
        action="append",
        default=[],
        metavar="CREDENTIAL=USER:PASSWORD",
        help="a basic-auth credential by name, repeatable",
    )
    n8n.add_argument("--faults", metavar="FILE", help="fault profile (YAML or JSON)")
    n8n.add_argument("--seed", type=int, help="seed for the faults (overrides the profile's)")
    n8n.add_argument(
        "--lenient", action="store_true", help="pass unsupported nodes through instead of refusing"
    )
    n8n.add_argument(
        "--all-active", action="store_true", help="register every workflow, active or not"
    )
    n8n.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="enable n8n's public API (/api/v1: executions, workflows) for this key, repeatable",
    )
    n8n.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the Remove Duplicates history and the execution list here, across restarts "
        "(default: in memory)",
    )
    n8n.set_defaults(func=_fake_n8n)


def _register_stripe(subparsers: Any) -> None:
    stripe = subparsers.add_parser("fake-stripe", help="send signed Stripe events")
    stripe_sub = stripe.add_subparsers(dest="stripe_command", required=True, metavar="COMMAND")
    send = stripe_sub.add_parser(
        "send",
        help="deliver events (optionally with a delivery fault) to a URL",
        description="Deliver realistic, signed Stripe events to URL; prints one JSON line per "
        "answer. Exits 1 when the endpoint accepted a request it should have rejected or did "
        "not accept (2xx, after the retries of --schedule) a delivery it should have accepted, "
        "3 when it never answered.",
    )
    send.add_argument("--to", required=True, metavar="URL", help="endpoint ({tenant} expands)")
    source = send.add_mutually_exclusive_group()
    source.add_argument(
        "--secret-file",
        metavar="FILE",
        help=f"a file holding the endpoint's signing secret (default: ${SECRET_VAR})",
    )
    source.add_argument(
        "--secret",
        help="the signing secret itself (visible in ps and shell history: prefer --secret-file "
        f"or ${SECRET_VAR})",
    )
    send.add_argument("--scenario", choices=("delivery", *SCENARIOS), default="delivery")
    send.add_argument("--count", type=int, default=1, help="events (burst: concurrent copies)")
    send.add_argument("--seed", type=int, default=0)
    send.add_argument("--tenant", default="", help="tenant id put in data.object.metadata")
    send.add_argument("--type", choices=EVENT_TYPES, help="event type for plain delivery")
    send.add_argument(
        "--schedule",
        default="",
        metavar="S1,S2,...",
        help="retry delays in seconds until a 2xx (default: no retries)",
    )
    send.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    send.set_defaults(func=_fake_stripe_send)


def _fake_n8n(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.faults) if args.faults is not None else None
        if profile is not None and args.seed is not None:
            profile = replace(profile, seed=args.seed)
        fake = FakeN8n.from_files(
            args.workflows,
            credentials=args.credentials,
            faults=profile,
            seed=args.seed or 0,
            lenient=args.lenient,
            active=True if args.all_active else None,
            data_dir=args.data_dir,
            api_keys=args.api_key,
            beside=not (args.header_auth or args.basic_auth),
        )
        for spec in args.header_auth:
            fake.credentials.add(_cli_credential(spec, "httpHeaderAuth", ("name", "value")))
        for spec in args.basic_auth:
            fake.credentials.add(_cli_credential(spec, "httpBasicAuth", ("user", "password")))
    except (FaultProfileError, WorkflowError, ValueError) as exc:
        print(f"reliability-harness fake-n8n: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reliability-harness fake-n8n: --data-dir {args.data_dir}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return 2
    routes = ", ".join(
        f"{'/'.join(s.methods)} /webhook/{s.path}"
        for wf in fake.workflows
        if wf.active
        for s in wf.webhooks
    )

    def announce(url: str) -> None:
        print(f"fake n8n on {url} serving {routes}", file=sys.stderr, flush=True)

    try:
        FakeN8nServer(fake, host=args.host, port=args.port, log_level="info").run(announce)
    except OSError as exc:
        print(f"reliability-harness fake-n8n: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def _cli_credential(spec: str, ctype: str, keys: tuple[str, str]) -> Credential:
    name, eq, rest = spec.partition("=")
    first, colon, second = rest.partition(":")
    if not eq or not colon or not name or not first:
        raise ValueError(f"--{'header' if ctype == 'httpHeaderAuth' else 'basic'}-auth {spec!r}: "
                         f"expected CREDENTIAL={keys[0].upper()}:{keys[1].upper()}")  # fmt: skip
    return Credential(id=name, name=name, type=ctype, data={keys[0]: first, keys[1]: second})


def signing_secret(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The secret from --secret-file, --secret or the environment; ValueError names the gap."""
    if args.secret_file is not None:
        try:
            text = Path(args.secret_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--secret-file {args.secret_file}: cannot read: {exc}") from None
        secret = text.strip()
        if not secret:
            raise ValueError(f"--secret-file {args.secret_file}: the file is empty")
        return secret
    secret = (args.secret or environ.get(SECRET_VAR, "")).strip()
    if not secret:
        raise ValueError(f"no signing secret: pass --secret-file FILE or set {SECRET_VAR}")
    return secret


def _fake_stripe_send(args: argparse.Namespace) -> int:
    try:
        secret = signing_secret(args, os.environ)
    except ValueError as exc:
        print(f"reliability-harness fake-stripe send: {exc}", file=sys.stderr)
        return 2
    try:
        schedule = [float(s) for s in args.schedule.split(",") if s.strip()]
    except ValueError:
        print(f"--schedule {args.schedule!r}: expected seconds like 1,5,25", file=sys.stderr)
        return 2
    if args.count < 1:
        print("--count must be >= 1", file=sys.stderr)
        return 2
    stripe = FakeStripe(
        seed=args.seed, secrets={args.tenant: secret}, schedule=schedule, timeout=args.timeout
    )
    answers = asyncio.run(_send(stripe, args))
    for answer in answers:
        print(json.dumps(answer.to_json()))
    verdict = judge_answers(answers)
    print(verdict.summary, file=sys.stderr)
    if not any(a.status is not None for a in answers):
        return INTERNAL
    return BROKEN if verdict.wrongly_accepted or verdict.not_accepted else OK


@dataclass(frozen=True, slots=True)
class SendVerdict:
    """How the endpoint's answers compare with what a correct endpoint does."""

    requests: int
    answered_2xx: int
    wrongly_accepted: int
    """Requests that should have been rejected (bad signature, stale replay...) but got a 2xx."""
    not_accepted: int
    """Deliveries that should have been accepted (new events, duplicates to dedupe) whose every
    attempt failed (no 2xx, transport errors included)."""

    @property
    def summary(self) -> str:
        return (
            f"{self.requests} requests, {self.answered_2xx} answered 2xx, "
            f"{self.wrongly_accepted} accepted that should have been rejected, "
            f"{self.not_accepted} deliveries not accepted that should have been"
        )


def judge_answers(answers: Sequence[DeliveryAnswer]) -> SendVerdict:
    """Group the answers into deliveries (a delivery's attempts count up from 0) and judge."""
    deliveries: list[list[DeliveryAnswer]] = []
    for answer in answers:
        if answer.attempt == 0 or not deliveries:
            deliveries.append([])
        deliveries[-1].append(answer)
    wrong = sum(1 for a in answers if a.expect == "reject" and a.ok)
    missed = sum(1 for d in deliveries if d[0].expect != "reject" and not any(a.ok for a in d))
    return SendVerdict(len(answers), sum(a.ok for a in answers), wrong, missed)


async def _send(stripe: FakeStripe, args: argparse.Namespace) -> list[Any]:
    async with httpx.AsyncClient() as client:
        if args.scenario != "delivery":
            return await stripe.run_scenario(
                args.scenario, args.to, tenant=args.tenant, count=args.count, client=client
            )
        got = []
        for i in range(args.count):
            kind = args.type or EVENT_TYPES[i % len(EVENT_TYPES)]
            event = stripe.event(kind, tenant=args.tenant)
            got.extend(await stripe.deliver(event, args.to, tenant=args.tenant, client=client))
        return got
