"""Errors of live runs: a stack that cannot be set up, and a load or crash run that failed."""

from __future__ import annotations

__all__ = ["LoadError", "PortError", "StackError"]


class LoadError(Exception):
    """Bad input or a run that could not be carried out. `exit_code`: 2 input, 3 run."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StackError(RuntimeError):
    """The stack could not be set up or a process misbehaved; the message says which and why."""


class PortError(StackError):
    """A chosen port cannot be used; the message names the option and the port."""
