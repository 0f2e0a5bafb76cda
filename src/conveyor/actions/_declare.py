"""`register_action`: the decorator that marks a class as an action, BudPipeline style.

It does not put the action in any global table: the registry is an object, and it finds
decorated classes through the `conveyor.actions` entry points (or `ActionRegistry.add`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from conveyor.actions._executor import ActionDefinition, BaseActionExecutor
from conveyor.actions._meta import ActionMeta
from conveyor.errors import InvalidActionError

_ATTR = "__conveyor_action__"
_META = "meta"
T = TypeVar("T")


def register_action(meta: ActionMeta) -> Callable[[T], T]:
    """Declare the decorated class as the action described by `meta`.

    The class names its executor in `executor_class` (or is itself a `BaseActionExecutor`).
    Everything is checked now, so a wrong declaration fails at import with the action named.
    """
    if not isinstance(meta, ActionMeta):
        raise InvalidActionError(
            str(getattr(meta, "type", "?")), ["register_action() takes an ActionMeta"]
        )

    def decorate(cls: T) -> T:
        executor = getattr(cls, "executor_class", None)
        if executor is None and isinstance(cls, type) and issubclass(cls, BaseActionExecutor):
            executor = cls
        if executor is None:
            raise InvalidActionError(
                meta.type,
                [f"{getattr(cls, '__name__', cls)!r} needs an executor_class attribute"],
            )
        own_meta = getattr(cls, "meta", meta)
        if own_meta is not meta and own_meta != meta:
            raise InvalidActionError(meta.type, ["the class's meta differs from register_action's"])
        definition = ActionDefinition(meta=meta, executor_class=executor, source=_qualname(cls))
        setattr(cls, _ATTR, definition)
        # As BudPipeline's decorator does: code that reads `SomeAction.meta` keeps working
        # when the class body does not repeat `meta = META`.
        setattr(cls, _META, meta)
        return cls

    return decorate


def definition_of(obj: Any, source: str | None = None) -> ActionDefinition:
    """The `ActionDefinition` an entry point's object stands for.

    Accepts a class decorated with `register_action` or `action`, a class with `meta` and
    `executor_class` attributes, or an `ActionDefinition`.

    Raises:
        InvalidActionError: the object is none of these.
    """
    if isinstance(obj, ActionDefinition):
        found = obj
    elif isinstance(getattr(obj, _ATTR, None), ActionDefinition):
        found = getattr(obj, _ATTR)
    elif isinstance(getattr(obj, "meta", None), ActionMeta) and hasattr(obj, "executor_class"):
        found = ActionDefinition(meta=obj.meta, executor_class=obj.executor_class)
    else:
        name = getattr(obj, "__qualname__", None) or repr(obj)
        raise InvalidActionError(
            "?",
            [
                f"{name} is not an action: decorate it with @register_action(META) or "
                "@action(...), or give it meta and executor_class attributes"
            ],
        )
    if source is not None and found.source != source:
        found = ActionDefinition(
            meta=found.meta, executor_class=found.executor_class, source=source
        )
    return found


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
