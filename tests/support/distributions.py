"""Installed distributions written straight to disk, for discovery tests.

A directory on sys.path holding ``<name>-<version>.dist-info/`` with METADATA and
entry_points.txt is exactly what pip leaves behind, so importlib.metadata finds these the way
it finds real plugins, without the cost of building and installing a wheel per test.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path


def write_distribution(
    root: Path,
    name: str,
    *,
    version: str = "1.0.0",
    entry_points: dict[str, str],
    modules: dict[str, str] | None = None,
    group: str = "conveyor.actions",
) -> Path:
    """Write an installed distribution under `root` and return its dist-info directory.

    Args:
        root: A directory that is (or will be) on sys.path.
        name: The distribution's name.
        version: Its version.
        entry_points: Entry point name to ``module:attr``, all in `group`.
        modules: Module file path relative to `root` (``pkg/mod.py``) to its source.
        group: The entry-point group.
    """
    dist_info = root / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{group}]", *(f"{key} = {value}" for key, value in entry_points.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for relative, source in (modules or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return dist_info
