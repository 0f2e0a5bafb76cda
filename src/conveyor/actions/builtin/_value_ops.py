"""Operations on a whole value, shared by ``transform`` and ``aggregate``.

They are lenient by design, as in BudPipeline, whose pipelines use them: an operation that
does not apply to the value's kind gives the value back (``uppercase`` of a number) or an
empty result (``keys`` of a list), rather than failing the step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def type_name(value: Any) -> str:
    """The Python name of `value`'s type (``dict``, ``list``, ``str``, ...), as BudPipeline's
    `input_type` and `output_type` outputs give it."""
    return type(value).__name__


def _case(change: Callable[[str], str]) -> Callable[[Any, dict[str, Any]], Any]:
    def apply(data: Any, _params: dict[str, Any]) -> Any:
        if isinstance(data, str):
            return change(data)
        if isinstance(data, dict):
            return {k: change(v) if isinstance(v, str) else v for k, v in data.items()}
        return data

    return apply


def _passthrough(data: Any, _params: dict[str, Any]) -> Any:
    return data


def _keys(data: Any, _params: dict[str, Any]) -> Any:
    return list(data) if isinstance(data, dict) else []


def _values(data: Any, _params: dict[str, Any]) -> Any:
    return list(data.values()) if isinstance(data, dict) else []


def _count(data: Any, _params: dict[str, Any]) -> Any:
    return len(data) if isinstance(data, list | dict | str) else 0


def unique(items: list[Any]) -> list[Any]:
    """The distinct items in first-seen order."""
    # JSON text as the identity: objects and lists (unhashable) compare by content, and 1,
    # 1.0 and true stay apart as they do in JSON.
    seen: set[str] = set()
    out = []
    for item in items:
        key = json.dumps(item, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _unique(data: Any, _params: dict[str, Any]) -> Any:
    return unique(data) if isinstance(data, list) else data


def _reverse(data: Any, _params: dict[str, Any]) -> Any:
    if isinstance(data, list | str):
        return data[::-1]
    return data


WHOLE_VALUE_OPERATIONS: dict[str, tuple[str, Callable[[Any, dict[str, Any]], Any]]] = {
    "passthrough": ("Pass through unchanged", _passthrough),
    "uppercase": ("Uppercase text", _case(str.upper)),
    "lowercase": ("Lowercase text", _case(str.lower)),
    "keys": ("An object's keys", _keys),
    "values": ("An object's values", _values),
    "count": ("Count items or characters", _count),
    "unique": ("Remove duplicates", _unique),
    "reverse": ("Reverse", _reverse),
}
"""``transform`` operations on the whole input; strings and objects' string values for the
case changes."""
