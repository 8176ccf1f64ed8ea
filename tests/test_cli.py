"""The command line's conventions: --version, python -m harness, exit codes for every
subcommand (shown in each --help), plain-text help with defaults, progress output, chaos --list."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main, version
from harness.cli.exits import BAD_INPUT, EPILOG, INTERNAL, INTERRUPTED, MissingExtra, run_command
from harness.cli.progress import ProgressPrinter
from harness.errors import InputError
from harness.sim.scenario import load_catalogue

SUBCOMMANDS = [
    ["chaos"], ["load"], ["crash"], ["serve"], ["fake-n8n"], ["fake-stripe", "send"],
    ["report"], ["schema"],
]  # fmt: skip


def harness(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_version_through_python_dash_m() -> None:
    done = harness("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"reliability-harness {version()}"
    assert version() != "unknown"  # the package is installed (editable) here


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_help_shows_the_exit_codes_in_plain_text(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*argv, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert EPILOG in text
    assert "`" not in text  # no Markdown in a terminal


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["chaos", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out DIR where results.json and junit.xml go (default: out/chaos)" in text


def test_bad_usage_exits_2() -> None:
    done = harness("chaos", "--no-such-option")
    assert done.returncode == BAD_INPUT
    assert "unrecognized arguments" in done.stderr


def test_chaos_list_names_every_catalogue_scenario_on_one_line() -> None:
    done = harness("chaos", "--list")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    catalogue = load_catalogue()
    assert len(lines) == len(catalogue)
    for line, sc in zip(lines, catalogue, strict=True):
        assert line.startswith(sc.name)
        assert len(line) <= 140
    assert "A quick end-to-end check" in done.stdout


def test_a_bad_scenario_file_exits_2_naming_it_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntenants: [\n  {id: a\n", encoding="utf-8")
    done = harness("chaos", "--scenario", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == BAD_INPUT
    assert f"{bad}: (file): not valid YAML at line 4" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_command_maps_what_escapes_a_command() -> None:
    def raises(exc: BaseException) -> int:
        raise exc

    cases = [
        (KeyboardInterrupt(), INTERRUPTED, "interrupted"),
        (InputError("f.yaml", "a.b", "must be a number"), BAD_INPUT, "f.yaml: a.b: must be"),
        (MissingExtra("locust", "load"), BAD_INPUT, "pip install 'reliability-harness[load]'"),
        (ModuleNotFoundError("no", name="pgserver"), BAD_INPUT, "reliability-harness[embedded-pg]"),
        (RuntimeError("boom"), INTERNAL, "Traceback"),
    ]
    for exc, code, says in cases:
        err = io.StringIO()
        assert run_command("x", lambda exc=exc: raises(exc), stderr=err) == code
        assert says in err.getvalue()
        assert ("Traceback" in err.getvalue()) == (code == INTERNAL)


def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "chaos", "--scenario", "load-24h", "--jobs", "1",
         "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first progress line: the run is under way
        assert "load-24h: " in first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED
    assert "reliability-harness chaos: interrupted" in err
    assert "Traceback" not in err


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_log_is_periodic_plain_lines() -> None:
    out, clock = io.StringIO(), Ticks()
    printer = ProgressPrinter("smoke", stream=out, mode="lines", every=10, clock=clock)
    for step in range(1, 60):
        clock.now = step * 0.5  # 29.5 s for 59%
        printer(step / 100)
    printer.close()
    assert out.getvalue().splitlines() == [
        "  smoke: 1% of simulated time",
        "  smoke: 21% of simulated time",  # 10 s after the first line
        "  smoke: 41% of simulated time",
        "  smoke: done",
    ]


def test_progress_bar_ends_its_line_before_anything_else_is_printed() -> None:
    out = io.StringIO()
    bar = ProgressPrinter("smoke", stream=out, mode="bar")
    bar(0.5)
    assert not out.getvalue().endswith("\n")
    bar.close()
    assert out.getvalue().endswith("\n")
    out.write("scenario ...table...\n")
    assert out.getvalue().splitlines()[-1] == "scenario ...table..."
    bar.close()  # idempotent
    assert out.getvalue().count("\n") == 2


def test_progress_mode_follows_the_stream() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert ProgressPrinter("x", stream=Tty()).mode == "bar"
    assert ProgressPrinter("x", stream=io.StringIO()).mode == "lines"


def test_main_returns_the_commands_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "faults"]) == 0
    assert '"title": "reliability-harness fault profile"' in capsys.readouterr().out
    assert main(["chaos", "--scenario", "nope"]) == BAD_INPUT
    assert "no such scenario; known:" in capsys.readouterr().err


def test_the_chaos_summary_claims_nothing_a_model_scenario_did_not_measure() -> None:
    from harness.cli.chaos import summary_table

    base = {"invariants": [{"passed": True}], "simulated_seconds": 3600.0, "wall_seconds": 1.0}
    occ = {
        **base,
        "name": "aws-occ",
        "trace_hash": "a" * 64,
        "figures": {"runs_per_point": 20.0},
        "comparison": {
            "kind": "aws-occ",
            "columns": ["strategy", "clients", "calls", "completion_s"],
            "rows": [["full", 10, 38.45, 0.47]],
            "verdict": "reproduce the published shape",
        },
    }
    herd_row = ["none", False, 600, 600, 6092, None, 540, 60, 5492]
    herd = {
        **base,
        "name": "herd",
        "trace_hash": "b" * 64,
        "figures": {"events_generated": 600.0},
        "comparison": {"kind": "herd", "columns": ["strategy"] * 9, "rows": [herd_row] * 2},
    }
    lines = summary_table([occ, herd]).splitlines()
    occ_line = next(line for line in lines if line.startswith("aws-occ"))
    assert occ_line.split()[3:9] == ["-", "-", "-", "-", "-", "1.0"]
    herd_line = next(line for line in lines if line.startswith("herd"))
    # Events of both variants' runs beside the delivered and calls summed over them.
    assert herd_line.split()[3:8] == ["1200", "1080", "120", "12184", "600"]
    assert "none | False | 600 | 600 | 6092 | never |" in "\n".join(lines)


def test_the_chaos_summary_shows_aws_occ_at_100_clients_and_says_so() -> None:
    from harness.cli.chaos import summary_table

    rows = [[s, n, float(n), 1.0] for s in ("full", "equal") for n in (10, 100, 190)]
    occ = {
        "name": "aws-occ",
        "invariants": [{"passed": True}],
        "simulated_seconds": 3600.0,
        "wall_seconds": 1.0,
        "trace_hash": "a" * 64,
        "figures": {},
        "comparison": {
            "kind": "aws-occ",
            "columns": ["strategy", "clients", "calls", "completion_s"],
            "rows": rows,
        },
    }
    text = summary_table([occ])
    assert "full | 100 | 100 | 1" in text
    assert "equal | 100 | 100 | 1" in text
    assert "| 190 |" not in text
    assert "| 10 |" not in text
    assert "(rows at 100 clients; all 6 rows are in results.json)" in text
