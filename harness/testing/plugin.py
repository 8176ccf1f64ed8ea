"""The pytest plugin (entry point `pytest11`): installing the package gives you our fixtures.

Fixtures live beside what they provide; this module only gathers them and declares markers.
"""

from __future__ import annotations

import pytest

pytest_plugins: tuple[str, ...] = (
    "harness.testing.postgres",
    "harness.testing.vclock",
    "harness.testing.fakes",
    "harness.testing.respx_fixtures",
)

_MARKERS = (
    "postgres: needs a real PostgreSQL (RELIABILITY_TEST_DATABASE_URL, testcontainers or embedded)",
    "faults(profile): fault profile (dict or path) for the fake_n8n / fake_n8n_server fixtures",
    "workflows(path): n8n workflow export(s) the fake n8n fixtures load",
    "seed(n): seed for the fake fixtures and the virtual clock",
    "virtual_clock(freeze=True): virtual_clock keeps freezegun's frozen wall in step",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
