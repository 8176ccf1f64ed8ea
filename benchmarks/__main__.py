"""Run every `*_bench.py` in this folder, or the ones named: `python -m benchmarks policies`."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removesuffix("_bench") for p in HERE.glob("*_bench.py"))
    for name in names:
        print(f"== {name}", flush=True)
        runpy.run_path(str(HERE / f"{name}_bench.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
