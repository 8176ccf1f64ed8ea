"""The house rules of docs/architecture.md, checked on the source: who may import whom, how the
harness observes the layer, and how big a piece of code may grow.

Each rule is also shown to catch what it exists to catch, on a small source written to break it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent

FOUNDATION: Final = frozenset(
    {"data", "errors", "inputs", "jsonschema", "outputs", "pgschema", "vclock", "verdict"}
)
"""harness's shared ground floor: modules every room may use."""

ALLOWED: Final[dict[str, frozenset[str]]] = {
    "reliability": frozenset({"reliability"}),
    "foundation": frozenset({"reliability", "foundation"}),
    "fakes": frozenset({"reliability", "foundation", "fakes"}),
    "sim": frozenset({"reliability", "foundation", "fakes", "sim"}),
    "chaos": frozenset({"reliability", "foundation", "fakes", "sim", "report", "chaos"}),
    "live": frozenset({"reliability", "foundation", "fakes", "live"}),
    "testing": frozenset({"reliability", "foundation", "fakes", "live", "testing"}),
    "report": frozenset({"foundation", "report"}),
    "schemas": frozenset({"foundation", "fakes", "sim", "schemas"}),
    "swarm": frozenset({"reliability", "foundation", "fakes", "sim", "chaos", "swarm"}),
    "cli": frozenset(
        {
            "reliability",
            "foundation",
            "fakes",
            "sim",
            "chaos",
            "live",
            "report",
            "schemas",
            "swarm",
            "cli",
        }
    ),
    "main": frozenset({"cli"}),
}
"""Each room and the rooms it may import (the table in docs/architecture.md)."""

MAX_FUNCTION: Final = 80
MAX_HARNESS_CLASS: Final = 250
MAX_HARNESS_MODULE: Final = 600
DATA_LITERALS: Final = frozenset({"openapi_document"})
"""Functions that are one data literal (the OpenAPI document), exempt from the length limit."""

PUBLIC_UNDERSCORED: Final = frozenset({"_replace", "_asdict", "_fields", "_make", "_getframe"})
"""Documented APIs spelled with an underscore: namedtuple's (so it cannot clash with field
names) and `sys._getframe`."""


def room_of(module: str) -> str | None:
    """The room a dotted module name belongs to, or None outside the project."""
    parts = module.split(".")
    if parts[0] == "reliability":
        return "reliability"
    if parts[0] != "harness":
        return None
    if len(parts) == 1:
        return "foundation"
    if parts[1] == "__main__":
        return "main"
    return "foundation" if parts[1] in FOUNDATION else parts[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def import_violations(module: str, tree: ast.AST) -> list[str]:
    room = room_of(module)
    if room is None:
        return []
    bad = []
    for line, target in imported(tree):
        other = room_of(target)
        if other is not None and other not in ALLOWED[room]:
            bad.append(f"{module}:{line}: the {room} room imports {target} ({other})")
    return bad


def observation_violations(module: str, tree: ast.AST) -> list[str]:
    """Patching (`setattr`), forwarding (`__getattr__`) and reads of another's privates."""
    bad = []
    for node in ast.walk(tree):
        where = f"{module}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "setattr":
                bad.append(f"{where}: setattr")
            private_name = (
                node.func.id == "getattr"
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")
            )
            if private_name and not _is_self(node.args[0]):
                bad.append(f"{where}: getattr of a private name")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name in ("__getattr__", "__getattribute__"):
                bad.append(f"{where}: {node.name} forwarding")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and not _is_self(node.value):
            bad.append(f"{where}: reads {ast.unparse(node)}")
    return bad


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORED


def _is_self(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


@dataclass(frozen=True)
class Size:
    kind: str
    name: str
    lines: int
    limit: int


def size_violations(module: str, source: str, *, harness: bool) -> list[str]:
    sizes = []
    lines = source.count("\n")
    if harness and lines > MAX_HARNESS_MODULE:
        sizes.append(Size("module", module, lines, MAX_HARNESS_MODULE))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if isinstance(node, ast.ClassDef):
                if harness and length > MAX_HARNESS_CLASS:
                    sizes.append(Size("class", node.name, length, MAX_HARNESS_CLASS))
            elif length > MAX_FUNCTION and node.name not in DATA_LITERALS:
                sizes.append(Size("function", node.name, length, MAX_FUNCTION))
    return [f"{module}: {s.kind} {s.name} has {s.lines} lines (limit {s.limit})" for s in sizes]


def sources() -> Iterator[tuple[str, Path]]:
    for package in ("reliability", "harness"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path, ROOT), path


# --- the rules, on the project ------------------------------------------------------------------


def test_every_room_imports_only_what_the_architecture_allows() -> None:
    bad = [v for m, p in sources() for v in import_violations(m, ast.parse(p.read_text()))]
    assert bad == []


def test_the_harness_observes_the_layer_through_declared_hooks_only() -> None:
    bad = [
        v
        for m, p in sources()
        if m.startswith("harness")
        for v in observation_violations(m, ast.parse(p.read_text()))
    ]
    assert bad == []


def test_no_function_module_or_class_outgrows_its_limit() -> None:
    bad = [
        v
        for m, p in sources()
        for v in size_violations(m, p.read_text(), harness=m.startswith("harness"))
    ]
    assert bad == []


# --- and each rule catches what it exists to catch ---------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("reliability.dispatch", "from harness.sim import run\n", "reliability room imports"),
        ("harness.report.html", "import harness.sim.trace\n", "report room imports"),
        ("harness.fakes.n8n", "from harness.live import stack\n", "fakes room imports"),
        ("harness.sim.run", "from harness.chaos import results\n", "sim room imports"),
    ],
)
def test_the_import_rule_refuses_a_forbidden_import(
    module: str, source: str, expected: str
) -> None:
    found = import_violations(module, ast.parse(source))
    assert len(found) == 1
    assert expected in found[0]


def test_the_import_rule_lets_allowed_imports_pass() -> None:
    source = "from harness.fakes.n8n import FakeN8n\nfrom reliability.clock import Clock\n"
    assert import_violations("harness.sim.run", ast.parse(source)) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("setattr(registry, 'get', spy)\n", "setattr"),
        ("class Spy:\n    def __getattr__(self, name): ...\n", "__getattr__ forwarding"),
        ("inner = store._inner\n", "reads store._inner"),
        ("inner = getattr(store, '_inner')\n", "getattr of a private name"),
    ],
)
def test_the_observation_rule_refuses_patching_and_private_reads(
    source: str, expected: str
) -> None:
    found = observation_violations("harness.sim.x", ast.parse(source))
    assert len(found) == 1
    assert expected in found[0]


def test_the_observation_rule_allows_own_privates_and_namedtuple_api() -> None:
    source = "self._x = 1\nsuper()._format_text('a')\nparts._replace(path='/')\n"
    assert observation_violations("harness.sim.x", ast.parse(source)) == []


def test_the_size_rule_counts_lines_per_function_class_and_module() -> None:
    long_function = "def f():\n" + "    x = 1\n" * MAX_FUNCTION
    assert size_violations("reliability.x", long_function, harness=False) == [
        f"reliability.x: function f has {MAX_FUNCTION + 1} lines (limit {MAX_FUNCTION})"
    ]
    short = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION - 1)
    assert size_violations("reliability.x", short, harness=False) == []
    big_module = "x = 1\n" * (MAX_HARNESS_MODULE + 1)
    assert size_violations("harness.x", big_module, harness=True) != []
    assert size_violations("reliability.x", big_module, harness=False) == []
