"""Dotted paths into JSON data (``payload.content.status``), shared by the data actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MISSING: Any = object()
"""Returned by `get_path` for a path that leads nowhere (None is a value)."""


def get_path(data: Any, path: str, default: Any = MISSING) -> Any:
    """The value at `path` in `data`, or `default` when the path leads nowhere.

    Segments are separated by dots; a segment of digits indexes a list (``items.0.name``).
    """
    current = data
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                return default
            current = current[segment]
        elif isinstance(current, Sequence) and not isinstance(current, str | bytes):
            try:
                current = current[int(segment)]
            except (ValueError, IndexError):
                return default
        else:
            return default
    return current


def first_path(data: Any, paths: Sequence[str]) -> tuple[str, Any] | None:
    """The first of `paths` that leads to a value in `data`, with the value."""
    for path in paths:
        value = get_path(data, path)
        if value is not MISSING:
            return path, value
    return None


def describe_type(value: Any) -> str:
    """The JSON name of `value`'s type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__
