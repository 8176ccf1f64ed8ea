"""Progress of a run over its simulated time, for people (a bar) and for CI logs (plain lines).

On a terminal, `ProgressPrinter` redraws one bar in place; anywhere else (a CI log, a pipe) it
prints a plain line at most every `every` seconds of wall time and one at the end, so a long run
shows it is alive without flooding the log. `close()` ends the bar's line, so whatever is printed
next (the summary table) starts on a line of its own even when a run stopped short of 100%.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

__all__ = ["Mode", "ProgressPrinter"]

Mode = Literal["bar", "lines", "off"]

_WIDTH = 30


class ProgressPrinter:
    """Call it with the fraction done (0..1); `close()` when the run is over."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        mode: Mode | None = None,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "of simulated time",
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode: Mode = mode if mode is not None else self._auto(self.stream)
        self.label = label
        self.every = every
        self._clock = clock
        self.unit = unit
        """What the fraction is a fraction of, in plain lines ("of simulated time", "of runs")."""
        self._last_pct = -1
        self._last_line: float | None = None
        self._open = False  # a bar is on screen without its newline

    @staticmethod
    def _auto(stream: TextIO) -> Mode:
        isatty = getattr(stream, "isatty", None)
        return "bar" if isatty is not None and isatty() else "lines"

    def __call__(self, fraction: float) -> None:
        pct = max(0, min(100, int(fraction * 100)))
        if self.mode == "off" or pct == self._last_pct:
            return
        self._last_pct = pct
        if self.mode == "bar":
            self._bar(fraction, pct)
        else:
            self._line(pct)

    def _bar(self, fraction: float, pct: int) -> None:
        filled = int(_WIDTH * max(0.0, min(1.0, fraction)))
        bar = "#" * filled + "." * (_WIDTH - filled)
        self.stream.write(f"\r  {self.label:<28} [{bar}] {pct:3d}%")
        self._open = True
        if pct >= 100:
            self.stream.write("\n")
            self._open = False
        self.stream.flush()

    def _line(self, pct: int) -> None:
        now = self._clock()
        due = self._last_line is None or now - self._last_line >= self.every
        if pct >= 100 or due:
            self.stream.write(f"  {self.label}: {pct}% {self.unit}\n")
            self.stream.flush()
            self._last_line = now

    def close(self) -> None:
        """The run is over: end the bar's line if one is open (the next output starts on a
        line of its own); in line mode, say it is done unless 100% was the last line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
        elif self.mode == "lines" and self._last_pct != 100 and self._last_line is not None:
            self.stream.write(f"  {self.label}: done\n")
            self.stream.flush()
            self._last_pct = 100
