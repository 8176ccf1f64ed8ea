"""Run every `*_bench.py` in this folder, or the ones named: `python -m benchmarks policies`."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _run(path: Path) -> int:
    """Run one benchmark as a script with its defaults; its exit status (0 when it just ends)."""
    argv0 = sys.argv
    sys.argv = [str(path)]  # not our list of names: a benchmark with options would refuse them
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:  # several end with sys.exit(main(...)): run the rest anyway
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = argv0
    return 0


def main(argv: list[str]) -> int:
    known = sorted(p.stem.removesuffix("_bench") for p in HERE.glob("*_bench.py"))
    names = argv or known
    missing = [n for n in names if n not in known]
    if missing:
        listed = ", ".join(known)
        print(f"no such benchmark: {', '.join(missing)} (known: {listed})", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        if _run(HERE / f"{name}_bench.py") != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
