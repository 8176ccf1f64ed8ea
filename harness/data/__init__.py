"""What the harness reads at run time, shipped inside the package.

The canonical copies live in the repository's top-level folders (`n8n/`, `scenarios/catalogue/`,
`loadtests/`); this package holds links to them, which the wheel build follows, so an installed
harness finds the same files under site-packages. Everything is looked up through
`importlib.resources`, never relative to the working directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["data_path"]


def data_path(*parts: str) -> Path:
    """The packaged file or folder `parts` (e.g. `data_path("n8n", "workflows")`).

    The package is always installed as files (wheels are unpacked), so this is a real path.
    """
    found = resources.files(__name__).joinpath(*parts)
    if not isinstance(found, Path):  # e.g. imported from a zip archive
        raise RuntimeError(f"harness data {'/'.join(parts)} is not on the file system: {found}")
    return found
