"""The exit codes of every `reliability-harness` command, and the errors that map to them.

    0    everything held
    1    an invariant (or a threshold) broke
    2    bad input: an option, a file, or a missing optional dependency
    3    internal error: the run could not be carried out
    130  interrupted (Ctrl-C or SIGTERM); every process the command started is stopped

`run_command` wraps a subcommand so that these hold for all of them: a bad input file prints
its `InputError` (file, key, problem) without a traceback, a missing extra names the pip command
that installs it, Ctrl-C prints one line, and anything unexpected prints its traceback and 3.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Final, TextIO

from harness.errors import InputError

__all__ = [
    "BAD_INPUT",
    "BROKEN",
    "EPILOG",
    "INTERNAL",
    "INTERRUPTED",
    "OK",
    "MissingExtra",
    "require",
    "run_command",
]

OK: Final = 0
BROKEN: Final = 1
BAD_INPUT: Final = 2
INTERNAL: Final = 3
INTERRUPTED: Final = 130

EPILOG: Final = """exit codes:
  0    everything held
  1    an invariant (or a threshold) broke
  2    bad input: an option, a file, or a missing optional dependency
  3    internal error: the run could not be carried out
  130  interrupted (Ctrl-C or SIGTERM)"""

_EXTRAS: Final = {
    "starlette": "service",
    "prometheus_client": "service",
    "locust": "load",
    "pgserver": "embedded-pg",
    "testcontainers": "testcontainers",
}
"""Optional modules and the package extra that installs each."""


class MissingExtra(RuntimeError):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"needs {module}, which is not installed: pip install 'reliability-harness[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str) -> None:
    """Raise `MissingExtra` unless the optional `module` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtra(module, _EXTRAS.get(module, "all"))


def run_command(name: str, func: Callable[[], int], *, stderr: TextIO | None = None) -> int:
    """Run one subcommand's body and map what escapes it to an exit code."""
    err = stderr if stderr is not None else sys.stderr
    try:
        return func()
    except KeyboardInterrupt:
        err.write(f"reliability-harness {name}: interrupted\n")
        return INTERRUPTED
    except InputError as exc:
        err.write(f"reliability-harness {name}: error: {exc}\n")
        return BAD_INPUT
    except MissingExtra as exc:
        err.write(f"reliability-harness {name}: {exc}\n")
        return BAD_INPUT
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            return _internal(name, err)
        err.write(f"reliability-harness {name}: {MissingExtra(exc.name or '?', extra)}\n")
        return BAD_INPUT
    except Exception:
        return _internal(name, err)


def _internal(name: str, err: TextIO) -> int:
    traceback.print_exc(file=err)
    err.write(f"reliability-harness {name}: internal error (exit {INTERNAL})\n")
    return INTERNAL
