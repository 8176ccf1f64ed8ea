"""`python -m harness`: the `reliability-harness` command line."""

from __future__ import annotations

import sys

from harness.cli import main

sys.exit(main())
