"""`reliability-harness`: one command line, one subcommand module per job.

Each module in `_COMMANDS` exposes `register(subparsers)`, which adds its subcommand and sets
`func` (taking the parsed namespace, returning an exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

_COMMANDS: tuple[str, ...] = (
    "harness.cli.fakes",
    "harness.cli.report",
    "harness.cli.load",
    "harness.cli.serve",
    "harness.cli.chaos",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reliability-harness",
        description="Chaos harness for n8n + Stripe reliability layers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
