"""`reliability-harness schema scenario|faults`: print the JSON Schema of a file format.

Editors validate and complete scenario files and fault profiles with it (yaml-language-server:
a first line `# yaml-language-server: $schema=docs/schema/scenario.schema.json`). The committed
copies under `docs/schema/` are these outputs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cli.exits import OK
from harness.schemas import SCHEMAS, schema_text

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of scenario files or fault profiles",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("format", choices=sorted(SCHEMAS), help="which file format")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text(args.format))
    return OK
