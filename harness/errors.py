"""The one shape of a refused input file: which file, which key, what is wrong."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """An input (fault profile, scenario, ...) that cannot be used; names source and key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem
