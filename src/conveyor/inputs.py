"""What every input edge refuses: values that cannot be stored as JSON, and documents too deep.

Python's `json` reads ``NaN``, ``Infinity`` and a lone surrogate (``"\\udc80"``) without
complaint, but none of them can be written back as JSON: a non-finite number turns into
``null`` or an error, and a lone surrogate cannot be encoded as UTF-8 at all. Each edge (API
bodies, events, pipeline files, CLI params) checks what it read with `unstorable`, so bad
input is refused where it arrives, naming the field, and never reaches the database.
"""

from __future__ import annotations

import json
import math
from typing import Any

from conveyor.errors import field_path

__all__ = ["MAX_DEPTH", "loads", "unstorable"]

MAX_DEPTH = 100
"""How deep lists and mappings may nest in any document Conveyor reads."""


def unstorable(value: Any, path: str = "", *, limit: int = 20) -> list[tuple[str, str]]:
    """The `(path, problem)` of each value in `value` that JSON cannot hold (at most `limit`).

    Refused: non-finite numbers, text that is not valid Unicode (a lone surrogate), and
    nesting deeper than `MAX_DEPTH`. Paths read like ``params.items[2].name``.
    """
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack and len(problems) < limit:
        item, where, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                problems.append((where, f"must be a finite number, got {item!r}"))
        elif isinstance(item, str):
            if not item.isascii() and not _is_unicode(item):
                problems.append((where, "is not valid Unicode text (a lone surrogate)"))
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                problems.append((where, f"nests more than {MAX_DEPTH} levels deep"))
                continue
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and not key.isascii() and not _is_unicode(key):
                    problems.append((where, "has a key that is not valid Unicode text"))
                    continue
                stack.append((child, field_path([key], where), depth + 1))
    return sorted(problems)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loads(text: str | bytes) -> Any:
    """JSON as the standard library reads it, refusing ``NaN`` and ``Infinity``.

    Raises:
        json.JSONDecodeError: the text is not JSON (non-finite constants included).
        RecursionError: it nests deeper than the interpreter can read.
    """
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)
