"""Every command in README.md and docs/*.md runs: a documented command that fails fails here.

Each Markdown file's fenced blocks run in document order, in a temporary copy of the
repository (so a block may write files, e.g. under `out/`), with the project's environment first
on PATH and no database URL set, as on a bare machine.

Which blocks run (the convention, for whoever adds a block):

- ```` ```bash ````, ```` ```sh ```` and ```` ```shell ```` blocks run with `bash -euo pipefail`;
  ```` ```python ```` blocks run with the project's Python. Blocks with another or no language
  (yaml, json, synopses like `reliability-harness load [--users N]`) are text and never run.
- An HTML comment on the line right before the fence changes that:

  - `<!-- doc-test: skip REASON -->`: the block is not run; the reason is required and should
    say where else it is exercised (e.g. "CI runs `make lint` itself").
  - `<!-- doc-test: background PORT -->`: a server. It starts in the background, the runner
    waits (at most 60 s) until 127.0.0.1:PORT accepts connections, and stops it after the
    file's last block; the blocks after it may use it.
  - `<!-- doc-test: pytest -->`: a Python block that is a test file of the user's own: it runs
    with `python -m pytest` in an empty directory (pytest's defaults, not this repository's
    configuration), and must pass.

A block fails the test when it exits non-zero (or, for a background block, when it dies or
never listens); the message shows the block, its file and line, and its output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = frozenset({"bash", "sh", "shell"})
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*doc-test:\s*(skip|background|pytest)\b\s*(.*?)\s*-->\s*$")
_BLOCK_TIMEOUT = 300

pytestmark = pytest.mark.slow


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: where it is, its language, its marking and its text."""

    file: Path
    line: int
    language: str
    mark: str
    argument: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.mark != "skip" and (self.language in SHELLS or self.language == "python")


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the doc-test mark before each (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        mark = _MARK.match(lines[i - 1]) if i else None
        kind, argument = (mark.group(1), mark.group(2)) if mark else ("", "")
        text = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(path, i + 1, fence.group(1), kind, argument, text))
        i = end + 1
    return found


def test_the_marks_are_well_formed() -> None:
    for path in DOCS:
        for block in blocks(path):
            if block.mark == "skip":
                assert block.argument, f"{block.where}: doc-test: skip needs a reason"
            if block.mark == "background":
                assert block.argument.isdigit(), f"{block.where}: background needs a PORT"
                assert block.language in SHELLS, f"{block.where}: background is for shell"
            if block.mark == "pytest":
                assert block.language == "python", f"{block.where}: pytest is for python"
    marked = [b for p in DOCS for b in blocks(p) if b.mark]
    assert marked, "the convention is in use (else this test checks nothing)"


def test_commands_in_text_blocks_are_runnable_blocks_or_synopses() -> None:
    """A command in an untagged block would escape the runner: only synopses may be untagged."""
    for path in DOCS:
        for block in blocks(path):
            if block.language:
                continue
            for line in block.text.splitlines():
                command = line.strip().startswith(("reliability-harness ", "make "))
                assert not command or "[" in line, f"{block.where}: tag it ```bash: {line}"


def _copy_repository(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)  # keeps mtimes: make sees the same freshness
    (dest / ".venv").symlink_to(ROOT / ".venv")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}  # a bare machine
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _command(block: Block, scratch: Path) -> list[str]:
    if block.language in SHELLS:
        return ["bash", "-euo", "pipefail", "-c", block.text]
    if block.mark == "pytest":
        test_dir = scratch / f"user-tests-{block.line}"
        test_dir.mkdir()
        (test_dir / "test_from_docs.py").write_text(block.text, encoding="utf-8")
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_dir)]
    return [sys.executable, "-c", block.text]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_background(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    log = cwd / f"background-{block.line}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            _command(block, cwd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _listening(int(block.argument)):  # poll the port (bounded)
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"{block.where}: the server did not listen:\n{log.read_text()}")
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    _copy_repository(dest)
    return dest


RUNNABLE = [path for path in DOCS if any(block.runs for block in blocks(path))]


def test_most_pages_have_commands_that_run() -> None:
    assert {ROOT / "README.md", ROOT / "docs" / "chaos.md"} <= set(RUNNABLE)


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_documented_commands_run(path: Path, copy: Path) -> None:
    env = _environment()
    servers: list[subprocess.Popen[str]] = []
    try:
        for block in blocks(path):
            if not block.runs:
                continue
            if block.mark == "background":
                servers.append(_start_background(block, copy, env))
                continue
            done = subprocess.run(
                _command(block, copy), cwd=copy, env=env, capture_output=True, text=True,
                timeout=_BLOCK_TIMEOUT, check=False,
            )  # fmt: skip
            assert done.returncode == 0, (
                f"{block.where} exited {done.returncode}:\n{block.text}\n"
                f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
            )
    finally:
        for proc in reversed(servers):
            _stop(proc)
