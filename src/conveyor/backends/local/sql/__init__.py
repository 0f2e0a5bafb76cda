"""The embedded engine's SQL, kept as data: numbered migrations and named queries."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def migrations() -> list[tuple[int, str]]:
    """(version, script) for every numbered migration, in order."""
    found: dict[int, tuple[str, str]] = {}
    for entry in resources.files(__package__).iterdir():
        match = re.match(r"^(\d{3})_\w+\.sql$", entry.name)
        if match:
            version = int(match.group(1))
            if version in found:
                # The database records one number: the second script would never run.
                raise RuntimeError(
                    f"two migrations are numbered {version:03d}: {found[version][0]} and "
                    f"{entry.name}; renumber one"
                )
            found[version] = (entry.name, entry.read_text(encoding="utf-8"))
    return [(version, script) for version, (_, script) in sorted(found.items())]


Q = _load_queries()
"""Query text by name."""
