"""The seed space cut into slices: which runs a swarm (or one shard of it) does, and for how long.

Run `i` of a swarm with seed `S` simulates the scenario generated from seed `S + i`, so every
run can be rerun alone (`chaos --swarm 1 --seed <S + i>`) and swarms with nearby seeds share
runs rather than colliding by accident. `--shard I/M` takes the runs whose index is `I - 1`
modulo `M`: M shards are disjoint, cover the swarm together, and each gets an even mix of it
with no coordinator. These are pure functions of their arguments.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["Shard", "ShardError", "parse_duration", "parse_shard", "run_seeds"]

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ShardError(ValueError):
    """A bad `--shard` or `--for` value; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Shard:
    """The `index`-th (1-based) of `count` disjoint slices of the seed space."""

    index: int = 1
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`I/M` with 1 <= I <= M."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ShardError(f"--shard must be I/M (e.g. 2/8), got {text!r}")
    index, count = int(parts[0]), int(parts[1])
    if not 1 <= index <= count:
        raise ShardError(f"--shard {text}: I must lie between 1 and M")
    return Shard(index, count)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1.5h` in seconds (positive)."""
    m = _DURATION.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise ShardError(f"--for must be a positive duration like 90s, 10m or 1h, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_seeds(seed: int, runs: int | None, shard: Shard = Shard()) -> Iterator[tuple[int, int]]:
    """(run index, run seed) of this shard's runs, in order; endless when `runs` is None (a
    time budget decides when to stop)."""
    indices = itertools.count(shard.index - 1, shard.count)
    for i in indices:
        if runs is not None and i >= runs:
            return
        yield i, seed + i
