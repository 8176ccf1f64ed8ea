"""pytest-asyncio, where it is installed: the plugin's async fixtures need it, nothing else does.

The plugin is loaded into every pytest run of an environment that has the package, so it must
load without pytest-asyncio. `async_fixture` makes a pytest-asyncio fixture when a recent enough
release is installed, and otherwise a fixture of the same name that fails the tests using it
with a message naming the extra to install. Tests that use none of them never notice.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any, Final, TypeVar

import pytest

__all__ = ["MIN_VERSION", "async_fixture", "missing_reason"]

MIN_VERSION: Final = (1, 4)
"""The first pytest-asyncio with the `pytest_asyncio_loop_factories` hook `virtual_clock` uses."""

_INSTALL: Final = "pip install 'reliability-harness[pytest]'"

_F = TypeVar("_F", bound=Callable[..., Any])


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _installed() -> str | None:
    try:
        return metadata.version("pytest-asyncio")
    except metadata.PackageNotFoundError:
        return None


def missing_reason(installed: Callable[[], str | None] = _installed) -> str | None:
    """None when pytest-asyncio >= 1.4 is installed; else what is wrong and how to fix it."""
    wanted = ".".join(map(str, MIN_VERSION))
    version = installed()
    if version is None:
        return f"needs pytest-asyncio >= {wanted}, which is not installed: {_INSTALL}"
    if _version_tuple(version) < MIN_VERSION:
        return f"needs pytest-asyncio >= {wanted}, found {version}: {_INSTALL}"
    return None


def async_fixture(
    *, reason: Callable[[], str | None] = missing_reason, **options: Any
) -> Callable[[_F], _F]:
    """`pytest_asyncio.fixture(**options)`, or, when `reason()` says pytest-asyncio is missing
    or too old, a stand-in of the same name that fails the tests using it with that reason."""

    def decorate(func: _F) -> _F:
        why = reason()
        if why is None:
            import pytest_asyncio

            wrap: Callable[[_F], _F] = pytest_asyncio.fixture(**options)
            return wrap(func)
        name = func.__name__
        message = f"the {name} fixture {why}"

        def unavailable() -> None:
            pytest.fail(message, pytrace=False)

        unavailable.__doc__ = func.__doc__
        stand_in: _F = pytest.fixture(name=name)(unavailable)  # type: ignore[assignment]
        return stand_in

    return decorate
