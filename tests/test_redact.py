"""The one redaction: every case the adversarial pass found, and the writers that use it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from harness.chaos.results import write_json, write_junit
from harness.cli import main as cli_main
from harness.report.model import load_results
from reliability.redact import REDACTED, Redactor, looks_secret, redact, redact_argv

CRON = "horse-battery-staple;x"
PASSWORD = "s3cr3t-pw@x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # URL user-info passwords (also one holding '@'), the user name kept.
        ("postgresql://app:hunter2@db:5432/x", f"postgresql://app:{REDACTED}@db:5432/x"),
        ("--database-url postgres://u:p@ss@h/db", f"--database-url postgres://u:{REDACTED}@h/db"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        # A ';' inside the value does not end it (the cron check keeps it).
        ("/api/weekly-recap?secret=abc;horse", f"/api/weekly-recap?secret={REDACTED}"),
        # A percent-encoded key is decoded before it is judged.
        (
            "/api/weekly-recap?x=secret&s%65cret=abc",
            f"/api/weekly-recap?x=secret&s%65cret={REDACTED}",
        ),
        ("/x?a=1;token=abc&b=2", f"/x?a=1;token={REDACTED}&b=2"),
        ("CRON_SECRET=abc # comment", f"CRON_SECRET={REDACTED} # comment"),
        ("N8N_API_KEY_HEADER=X-Key", "N8N_API_KEY_HEADER=X-Key"),
        # Flags.
        ("send --secret whsec_abc --count 2", f"send --secret {REDACTED} --count 2"),
        ("send --admin-token=abc", f"send --admin-token={REDACTED}"),
        ("send --secret-file /tmp/s", "send --secret-file /tmp/s"),
        # Authorization values.
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: {REDACTED}"),
        ('{"authorization": "Bearer xyz"}', '{"authorization": "' + REDACTED + '"}'),
        ("token was bearer abc.def", f"token was bearer {REDACTED}"),
    ],
)
def test_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "shown",
    [
        CRON,
        quote(CRON, safe=""),
        quote_plus(CRON),
        quote(CRON, safe="").lower(),
        "horse%2Dbattery-staple%3bx",  # some characters encoded, lower-case hex
    ],
)
def test_configured_secret_anywhere_also_percent_encoded(shown: str) -> None:
    text = f"GET /x?q=1&other={shown}&z=1 and in prose{shown}too"
    out = Redactor([CRON])(text)
    assert "horse" not in out
    assert "staple" not in out
    assert out.count(REDACTED) == 2


def test_unicode_and_space_secret_percent_encoded() -> None:
    secret = "pässwörd mit space"
    for shown in (quote(secret), quote_plus(secret), secret):
        assert Redactor([secret])(f"a={shown}") == f"a={REDACTED}"


def test_argv_hides_flag_values_in_both_forms() -> None:
    argv = ["reliability-harness", "load", "--secret", "abc", "--token=def", "--seed", "1"]
    assert redact_argv(argv) == [
        "reliability-harness",
        "load",
        "--secret",
        REDACTED,
        f"--token={REDACTED}",
        "--seed",
        "1",
    ]
    url = f"postgresql://u:{PASSWORD}/db"
    assert PASSWORD not in " ".join(redact_argv(["chaos", "--database-url", url]))


def test_looks_secret_decodes_and_skips_file_names() -> None:
    for name in ("s%65cret", "--api-key", "PASSWORD", "clientSecret", "access_token"):
        assert looks_secret(name), name
    assert not looks_secret("--secret-file")
    assert not looks_secret("secretary")


def test_results_writers_redact(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "report" / "fixtures" / "chaos.json"
    doc = json.loads(fixture.read_text(encoding="utf-8"))
    command = "reliability-harness chaos --database-url postgresql://u:pw-42@h/db --seed 1"
    doc["command"] = command
    for scenario in doc["scenarios"]:
        scenario["command"] = command
    write_json(tmp_path / "results.json", doc)
    write_junit(tmp_path / "junit.xml", doc)
    for name in ("results.json", "junit.xml"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "pw-42" not in text
        assert f"u:{REDACTED}@h" in text


def test_every_report_file_redacts_old_results(tmp_path: Path) -> None:
    """A results file written before redaction existed: no report file repeats its password
    (report.json, summary.md, junit.xml and the HTML "reproduce with" lines)."""
    fixture = Path(__file__).parent / "report" / "fixtures" / "chaos.json"
    doc = json.loads(fixture.read_text(encoding="utf-8"))
    leaked = "reliability-harness chaos --database-url postgresql://u:pw-42@h/db --seed 1"
    doc["command"] = leaked
    for scenario in doc["scenarios"]:
        scenario["command"] = leaked
    (tmp_path / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    assert "pw-42" not in repr(load_results(tmp_path / "results.json"))
    out = tmp_path / "report"
    assert cli_main(["report", str(tmp_path / "results.json"), "--out", str(out)]) == 0
    files = sorted(out.iterdir())
    assert len(files) >= 4
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert "pw-42" not in text, file.name
    assert REDACTED in (out / "summary.md").read_text(encoding="utf-8")
