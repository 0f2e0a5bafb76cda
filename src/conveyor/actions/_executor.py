"""The executor base class and the pairing of metadata with an executor."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.actions._context import ActionContext, EventContext
from conveyor.actions._meta import ActionMeta, ExecutionMode
from conveyor.actions._results import ActionResult, EventResult
from conveyor.errors import InvalidActionError


class BaseActionExecutor:
    """Subclass and implement `execute()`; event-driven actions also implement `on_event()`.

    One executor instance serves one attempt, so instance attributes set in `execute()` are
    visible to `cleanup()` of the same attempt (but not to `on_event()`, which may run after a
    restart: keep what it needs in the outputs).
    """

    async def execute(self, context: ActionContext) -> ActionResult:
        """Do the work, or start it elsewhere and return `awaiting_event=True`."""
        raise NotImplementedError

    async def on_event(self, context: EventContext) -> EventResult:
        """Decide what an event means for the waiting step."""
        raise NotImplementedError(f"{type(self).__name__} does not handle events")

    async def cleanup(self, context: ActionContext) -> None:
        """Undo or release what `execute()` started; called when the step is cancelled."""


@dataclass(frozen=True)
class ActionDefinition:
    """A registered action: its metadata, its executor class and where it came from.

    `aliases` are other names the registry finds it by: the id of the entry point it was
    installed as (``package.module:object``), the name NOMAD gives an action.
    """

    meta: ActionMeta
    executor_class: type[BaseActionExecutor]
    source: str = "<direct>"
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not (
            isinstance(self.executor_class, type)
            and issubclass(self.executor_class, BaseActionExecutor)
        ):
            problems.append(
                f"executor_class: {self.executor_class!r} is not a BaseActionExecutor subclass"
            )
        elif (
            self.meta.execution_mode is ExecutionMode.EVENT_DRIVEN
            and self.executor_class.on_event is BaseActionExecutor.on_event
        ):
            problems.append(
                f"executor_class: {self.executor_class.__name__} is EVENT_DRIVEN but does "
                "not implement on_event()"
            )
        if problems:
            raise InvalidActionError(self.meta.type, problems)

    @property
    def type(self) -> str:
        """The action's type."""
        return self.meta.type

    def new_executor(self) -> BaseActionExecutor:
        """A fresh executor for one attempt."""
        return self.executor_class()
