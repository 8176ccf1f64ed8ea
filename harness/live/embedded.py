"""An embedded PostgreSQL 16 (the `pgserver` wheel) for runs that were given no server.

`reliability-harness serve`, `load`, `crash` and `chaos --database-url embedded` and the test
plugin start one here when no URL is configured. The server listens on a unix socket in its data
directory only (no TCP port), runs as the `pgserver` system user when started by root (PostgreSQL
refuses to run as root; pgserver creates that user), and several processes may share one data
directory: starting it again joins the running server.

    with embedded_postgres(None, announce=print) as pg:   # a temporary data directory
        ...  pg.url  ...                                   # postgresql://postgres:@/postgres?host=...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "EXTRA",
    "EmbeddedPostgres",
    "EmbeddedUnavailable",
    "embedded_postgres",
    "start_embedded",
    "stop_embedded",
]

EXTRA: Final = "embedded-pg"
"""The package extra that installs pgserver."""

_STOP_TIMEOUT: Final = 30.0


class EmbeddedUnavailable(RuntimeError):
    """The embedded server cannot be used here (pgserver missing, or it failed to start)."""


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    """A running embedded server: where its data lives and how to connect."""

    data_dir: Path
    url: str


def _pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers): harmless here.
            warnings.simplefilter("ignore")
            import pgserver  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "the embedded PostgreSQL needs the pgserver package: "
            f"pip install 'reliability-harness[{EXTRA}]'"
        ) from exc
    return pgserver


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start the server whose data lives in `data_dir` (initialised on first use), or join it
    when it already runs. It keeps running until `stop_embedded(data_dir)`."""
    pgserver = _pgserver()
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # The constructor, not get_server(): that one caches a handle per directory in the
        # process, which still says "running" after stop_embedded().
        server = pgserver.PostgresServer(data_dir, cleanup_mode=None)
        url: str = server.get_uri()
    except Exception as exc:  # pgserver raises CalledProcessError, AssertionError, OSError...
        log = data_dir / "log"
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.is_file() else ""
        raise EmbeddedUnavailable(
            f"the embedded PostgreSQL in {data_dir} did not start: {exc}"
            + (f"\n{tail}" if tail else "")
        ) from exc
    return EmbeddedPostgres(data_dir, url)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
    except OSError:
        return None
    return int(first) if first.strip().isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_embedded(data_dir: Path, *, timeout: float = _STOP_TIMEOUT) -> bool:
    """Stop the server of `data_dir` if one runs; True when one was stopped.

    SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected, work is rolled back, the
    data directory is left consistent, and `postmaster.pid` is removed last. Waits at most
    `timeout` seconds for that, then kills the server.
    """
    pid = _postmaster_pid(data_dir)
    if pid is None or not _running(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while _postmaster_pid(data_dir) == pid and _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _postmaster_pid(data_dir) == pid and _running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


@contextlib.contextmanager
def embedded_postgres(
    data_dir: Path | None, *, announce: Callable[[str], None] | None = None
) -> Iterator[EmbeddedPostgres]:
    """A server for the duration of the block, stopped at its end.

    With `data_dir` None the data lives in a new temporary directory that is removed at the end;
    a given `data_dir` is kept (run again with it to find the same databases).
    """
    temporary = data_dir is None
    where = Path(tempfile.mkdtemp(prefix="reliability-harness-pg-")) if temporary else data_dir
    assert where is not None
    target = (where / "data" if temporary else where).expanduser().resolve()
    pid = _postmaster_pid(target)
    joined = pid is not None and _running(pid)
    try:
        pg = start_embedded(target)
        if announce is not None:
            kept = "removed at exit" if temporary else "kept"
            how = "joined the server running" if joined else "started"
            announce(f"embedded PostgreSQL 16 (pgserver): {how} with data in {target} ({kept})")
        try:
            yield pg
        finally:
            if not joined:  # a server someone else started stays up for them
                stop_embedded(pg.data_dir)
    finally:
        if temporary:
            shutil.rmtree(where, ignore_errors=True)
