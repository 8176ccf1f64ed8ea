"""Child processes of a live run, and the loopback ports they listen on.

Each child runs in a session (process group) of its own, so stopping it stops whatever it
spawned, and on Linux the kernel kills it if the harness itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, TextIO

from harness.live.errors import PortError

__all__ = ["LOOPBACK", "ManagedProcess", "PortError", "Supervisor", "ensure_port_free", "free_port"]

LOOPBACK: Final = "127.0.0.1"


def free_port() -> int:
    """An ephemeral port on the loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, *, what: str) -> None:
    """Raise `PortError` naming `what` unless `port` can be bound on the loopback now."""
    if not 0 < port < 65536:
        raise PortError(f"{what}: port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise PortError(
                f"{what}: port {port} on {LOOPBACK} is in use ({exc.strerror}); "
                "choose another or leave it out for an ephemeral port"
            ) from None


def _die_with_parent() -> None:
    """Runs in the child before exec: a new session, and SIGKILL when the harness dies."""
    os.setsid()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class ManagedProcess:
    """A child process the `Supervisor` started, with its own process group and log file."""

    name: str
    argv: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        """The last lines of its output (stdout and stderr), for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts children in process groups of their own and stops every one of them.

    `stop_all()` (also `__exit__`) sends SIGTERM to each group, waits up to `grace` seconds,
    then SIGKILLs the group, newest first. `on_event(message)` is told about every start/stop.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        grace: float = 5.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._log_dir = log_dir
        self._grace = grace
        self._on_event = on_event or (lambda _message: None)
        self._procs: list[ManagedProcess] = []
        self._logs: list[TextIO] = []

    @property
    def processes(self) -> tuple[ManagedProcess, ...]:
        return tuple(self._procs)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
    ) -> ManagedProcess:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        index = sum(1 for p in self._procs if p.name == name)
        log_path = self._log_dir / (f"{name}.log" if index == 0 else f"{name}.{index}.log")
        log = log_path.open("a", encoding="utf-8")
        self._logs.append(log)
        popen = subprocess.Popen(  # noqa: S603  (argv built by us, no shell)
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )
        proc = ManagedProcess(name, tuple(argv), popen, log_path)
        self._procs.append(proc)
        self._on_event(f"started {name}: pid {proc.pid} (log {log_path})")
        return proc

    def signal_group(self, proc: ManagedProcess, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def kill(self, proc: ManagedProcess) -> None:
        """SIGKILL the process group now and reap the leader (a crash, not a shutdown)."""
        self.signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=self._grace)
        self._on_event(f"killed {proc.name}: pid {proc.pid} (SIGKILL)")

    def stop(self, proc: ManagedProcess) -> None:
        """SIGTERM the group, wait up to the grace period, then SIGKILL whatever is left."""
        if proc.alive():
            self.signal_group(proc, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=self._grace)
            except subprocess.TimeoutExpired:
                self.signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=self._grace)
        # Anything the leader left behind in its group goes too.
        self.signal_group(proc, signal.SIGKILL)
        self._on_event(f"stopped {proc.name}: pid {proc.pid} (exit {proc.popen.returncode})")

    def stop_all(self) -> None:
        while self._procs:
            proc = self._procs.pop()
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                self._on_event(f"could not stop {proc.name} (pid {proc.pid}): {exc!r}")
        for log in self._logs:
            log.close()
        self._logs.clear()

    def forget(self, proc: ManagedProcess) -> None:
        """Drop a process that has exited from the list (after `kill`)."""
        if proc in self._procs:
            self._procs.remove(proc)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
