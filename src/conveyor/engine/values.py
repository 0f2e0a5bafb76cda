"""What a value becomes when a run keeps it: the one conversion both backends go through.

A template or an action can make values that JSON cannot hold exactly: generators and iterators
(`| unique`, `| reverse`, `| select`), tuples, sets, `inf` and `nan`, integers too large for
the store. Stored as they come, the embedded engine would keep one thing in memory and another
in its database, and Temporal a third in its history. So every value a run keeps (rendered
params and `for_each` items, step and run outputs) is converted here first, and what later
steps see is what was stored, on both backends.

- iterators and generators are read into lists, tuples into lists;
- mapping keys become strings the way JSON writes them (`1` -> `"1"`, `True` -> `"true"`);
- strings, numbers, booleans and None stay (subclasses become the plain type);
- `inf`, `-inf` and `nan` are refused: JSON has no such numbers, and turning them into null
  would hide an overflow;
- integers outside the signed 64-bit range are refused: SQLite and most JSON readers cannot
  hold them exactly, and a number that silently changes is worse than a clear error;
- anything else (a date, an object) is refused, naming its type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from conveyor.actions import EventAction, EventResult, StepStatus
from conveyor.errors import UnstorableValueError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_ITEMS = 10_000_000
"""How many items an iterator is read to at most (a bound on `range()` and the like)."""


def stored(value: Any, where: str = "") -> Any:
    """`value` as a run keeps it (see the module's notes).

    Args:
        value: What a template or an action made.
        where: A prefix for the path in messages (`params.count`, `outputs`).

    Raises:
        UnstorableValueError: a number JSON cannot hold exactly, or a value of another kind.
    """
    return _stored(value, where)


def _stored(value: Any, path: str) -> Any:
    # The common kinds first, by exact type: this runs on the engine's hot path.
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return value
        raise UnstorableValueError(
            f"{_at(path)}the integer {_short(value)} is outside the 64-bit range a run can store"
        )
    if kind is float:
        if math.isfinite(value):
            return value
        raise UnstorableValueError(
            f"{_at(path)}{value} is not a number a run can store (only finite numbers are)"
        )
    if kind is dict or isinstance(value, Mapping):
        result = {
            _key(key, path): _stored(item, _join(path, str(key))) for key, item in value.items()
        }
        if len(result) != len(value):
            raise UnstorableValueError(f"{_at(path)}{_collision(value)}")
        return result
    if kind is list or kind is tuple:
        return [_stored(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str):
        return str(value)  # Markup and other str subclasses: the text.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _stored(int(value), path)
    if isinstance(value, float):
        return _stored(float(value), path)
    if isinstance(value, set | frozenset):
        raise UnstorableValueError(
            f"{_at(path)}a set has no order a run can store; use `| list | sort` for a list"
        )
    if isinstance(value, Iterator) or (
        isinstance(value, Iterable) and not isinstance(value, bytes | bytearray)
    ):
        return _read(value, path)
    raise UnstorableValueError(f"{_at(path)}a {kind.__name__} is not a value a run can store")


def _read(value: Iterable[Any], path: str) -> list[Any]:
    """An iterator's items, stored. A template's lazy result (`| unique`, `| map`) is
    computed only now, so a failure in it is raised here, as this value's error."""
    try:
        return [_stored(item, f"{path}[{i}]") for i, item in enumerate(_bounded(value, path))]
    except UnstorableValueError:
        raise
    except Exception as exc:  # Whatever the template does, it fails the value.
        raise UnstorableValueError(
            f"{_at(path)}the template failed while its result was read: {type(exc).__name__}: {exc}"
        ) from exc


def _bounded(value: Iterable[Any], path: str) -> Iterator[Any]:
    for count, item in enumerate(value):
        if count >= MAX_ITEMS:
            raise UnstorableValueError(f"{_at(path)}more than {MAX_ITEMS} items")
        yield item


def _key(key: Any, path: str) -> str:
    """A mapping key as JSON writes it."""
    if isinstance(key, str):
        return str(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        number = _stored(key, path)
        return str(number) if isinstance(number, int) else repr(number)
    raise UnstorableValueError(
        f"{_at(path)}a key of type {type(key).__name__} cannot be stored (keys are strings)"
    )


def _collision(value: Mapping[Any, Any]) -> str:
    seen: set[str] = set()
    for key in value:
        text = _key(key, "")
        if text in seen:
            return f"two keys are both {text!r} once stored as text"
        seen.add(text)
    return "two keys are the same once stored as text"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _short(number: int) -> str:
    text = str(number) if number.bit_length() < 4000 else "of more than 1,000 digits"
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} digits)"


def checked_event_result(result: EventResult) -> EventResult:
    """`result` with its outputs as a run keeps them, or a failure that says why they cannot be.

    Both backends call it on what `on_event()` returned, before the state machine sees it:
    on Temporal the result must cross into the workflow as JSON, so the check cannot wait for
    the machine.
    """
    try:
        outputs = stored(result.outputs, "outputs")
    except UnstorableValueError as exc:
        return EventResult(
            action=EventAction.COMPLETE,
            status=StepStatus.FAILED,
            error=f"on_event returned outputs a run cannot store: {exc}",
        )
    return result.model_copy(update={"outputs": outputs})
