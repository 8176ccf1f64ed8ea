"""The harness's one reader of YAML/JSON inputs: every refusal names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.inputs import MAX_DEPTH, Reader, read_document, read_json
from harness.outputs import write_text_atomic


def _file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "input.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_yaml_and_json_read_alike(tmp_path: Path) -> None:
    assert read_document(_file(tmp_path, "a: 1\nb: [x, y]\n"), "f") == {"a": 1, "b": ["x", "y"]}
    assert read_document(_file(tmp_path, '{"a": 1, "b": ["x", "y"]}'), "f") == {
        "a": 1,
        "b": ["x", "y"],
    }


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"f: \(file\): .*key 'a' appears twice .*line 3"):
        read_document(_file(tmp_path, "a: 1\nb: 2\na: 3\n"), "f")
    with pytest.raises(InputError, match="appears twice"):
        read_document(_file(tmp_path, '{"x": {"k": 1, "k": 2}}'), "f")


def test_nesting_beyond_the_limit_is_refused_and_at_the_limit_is_read(tmp_path: Path) -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(InputError, match=f"nested deeper than {MAX_DEPTH} levels"):
        read_document(_file(tmp_path, deep), "f")
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert read_document(_file(tmp_path, ok), "f") is not None


def test_syntax_errors_name_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not valid YAML at line 2, column 5: .*mapping"):
        read_document(_file(tmp_path, "a: 1\nb: c: d\n"), "f")


def test_unreadable_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="f: \\(file\\): not UTF-8 text"):
        read_document(_file(tmp_path, b"a: caf\xe9\n"), "f")
    with pytest.raises(InputError, match="cannot read"):
        read_document(tmp_path / "missing.yaml", "f")


def test_reader_names_the_key_path() -> None:
    r = Reader("scenario.yaml")
    with pytest.raises(InputError, match=r"scenario.yaml: traffic.spread: must be above 0, got -1"):
        r.number("traffic.spread", -1, positive=True)
    with pytest.raises(InputError, match=r"scenario.yaml: cron.batchy: unknown key \(known: batch"):
        r.mapping("cron", {"batchy": 1}, frozenset({"batch"}))
    with pytest.raises(InputError, match=r"delay: max 1 is below min 2"):
        r.span("delay", [2, 1])
    assert r.items("list", None) == []
    assert r.probability("p", 0.5) == 0.5


def test_read_json_refuses_repeated_keys_truncation_and_emptiness(tmp_path: Path) -> None:
    ok = tmp_path / "ok.json"
    ok.write_text('{"a": [1, {"b": null}]}', encoding="utf-8")
    assert read_json(ok, "ok.json") == {"a": [1, {"b": None}]}
    cases = {
        '{"a": 1, "a": 2}': "key 'a' appears twice in one object",
        '{"a": [1, 2': "(the file looks truncated)",
        "  \n": "empty file",
        "[" * 70 + "]" * 70: "nested deeper than 64 levels",
    }
    for text, problem in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as err:
            read_json(bad, "bad.json")
        assert err.value.source == "bad.json"
        assert problem in err.value.problem


def test_write_text_atomic_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.json"
    write_text_atomic(target, "first\n")
    write_text_atomic(target, "second\n")
    assert target.read_text(encoding="utf-8") == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]
    # A write that fails half way leaves the old file and no temporary behind.
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "third \ud800\n")
    assert target.read_text(encoding="utf-8") == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]
