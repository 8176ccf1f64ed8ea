"""`reliability-harness`: one command line, one subcommand module per job.

Each module in `_COMMANDS` exposes `register(subparsers)`, which adds its subcommand and sets
`func` (taking the parsed namespace, returning an exit code) as the parser default. Modules
import what their command needs when it runs, so `--help`, `--version` and the commands of the
base install work without the optional extras. Exit codes: `harness.cli.exits`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from harness.cli.exits import EPILOG, run_command

__all__ = ["CommandParser", "HelpFormatter", "build_parser", "main", "version"]

_COMMANDS: tuple[str, ...] = (
    "harness.cli.chaos",
    "harness.cli.load",
    "harness.cli.serve",
    "harness.cli.fakes",
    "harness.cli.reconcile",
    "harness.cli.report",
    "harness.cli.schema",
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Plain-text help: descriptions keep their lines, options show their defaults, and the
    Markdown backticks of the docstrings the help is made from are dropped."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default in (None, False, argparse.SUPPRESS)
            or default == []
        ):
            return text
        return f"{text} (default: %(default)s)"

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace("`", ""))

    def _expand_help(self, action: argparse.Action) -> str:
        return super()._expand_help(action).replace("`", "")


class CommandParser(argparse.ArgumentParser):
    """Every (sub)command's parser: plain-text help and the exit codes as its epilog."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("epilog", EPILOG)
        super().__init__(*args, **kwargs)


def version() -> str:
    """The installed distribution's version ("unknown" when run from an uninstalled tree)."""
    try:
        return metadata.version("reliability-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="reliability-harness",
        description="Chaos harness for n8n + Stripe reliability layers.",
    )
    parser.add_argument("--version", action="version", version=f"reliability-harness {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.command if args.command != "fake-stripe" else "fake-stripe send"
    code: int = run_command(name, lambda: args.func(args))
    return code


if __name__ == "__main__":
    sys.exit(main())
