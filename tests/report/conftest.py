"""Fixture files of the chaos and load results shapes, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

_FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def chaos_path() -> Path:
    """Four scenarios: jitter bounds, an outage (one broken invariant), a herd, a replay."""
    return _FIXTURES / "chaos.json"


@pytest.fixture
def empty_path() -> Path:
    """Scenarios with empty and missing series, figures and comparisons."""
    return _FIXTURES / "chaos_empty_series.json"


@pytest.fixture
def producer_path() -> Path:
    """Three scenarios as `reliability-harness chaos --seed 1` wrote them, series shortened:
    herd variants as `variant` labels, breaker states in upper case, a comparison verdict."""
    return _FIXTURES / "chaos_producer.json"


@pytest.fixture
def load_path() -> Path:
    """A load run as `harness.live.load` writes it (argv command, null statistics)."""
    return _FIXTURES / "load.json"


@pytest.fixture
def chaos_doc(chaos_path: Path) -> dict[str, Any]:
    """A fresh, mutable copy of the chaos fixture."""
    doc: dict[str, Any] = json.loads(chaos_path.read_text(encoding="utf-8"))
    return doc
