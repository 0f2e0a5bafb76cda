"""NOMAD-shaped actions: a hand-written Temporal workflow and its activities, run as an action.

A NOMAD action ports by changing its import and its entry-point group::

    from conveyor.backends.temporal.nomad import Action, TaskQueue

    my_action = Action(
        task_queue=TaskQueue.CPU,
        workflow=ExampleWorkflow,
        activities=[get_request],
    )

    # pyproject.toml
    [project.entry-points."conveyor.actions"]
    example_workflow = "nomad_example.actions.myaction:my_action"

The registry reads an `Action` like any other action: its params come from the type of the
workflow's `@workflow.run` argument (a dataclass or a Pydantic model), so the catalog, forms
and `start_action` validation see its fields. On a run, the step's activity starts the workflow
on the Action's task queue (workflow id ``<run id>.<step>.<attempt>``, reused when the worker
that started it died) and waits for its result, which becomes the step's outputs; cancelling
the run cancels the workflow. Workers of that queue register the workflow and its activities
(`conveyor.backends.temporal.worker`). The embedded engine cannot run Temporal code, so such an
action is refused there, naming the backend it needs.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from functools import cached_property
from typing import Any, ClassVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticUndefined, to_jsonable_python
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from conveyor.actions import (
    ActionContext,
    ActionDefinition,
    ActionMeta,
    ActionRegistry,
    ActionResult,
    BaseActionExecutor,
)
from conveyor.actions._function import _outputs_of, _params_of
from conveyor.backends.temporal import names
from conveyor.errors import InvalidActionError, ParamProblem, ParamValidationError

__all__ = [
    "Action",
    "TaskQueue",
    "WorkflowActionExecutor",
    "action_of",
    "needs_temporal_message",
    "task_queue",
    "workflow_actions",
]

PREFIX_MEMO = "conveyor_task_queue_prefix"
"""The memo key under which a started workflow finds the cluster's task-queue prefix."""


class TaskQueue(StrEnum):
    """The queues NOMAD provides by default; any lowercase identifier works."""

    CPU = "cpu"
    GPU = "gpu"


def needs_temporal_message(action_type: str) -> str:
    """Why a workflow action cannot run on the embedded engine, and what to do."""
    return (
        f"action {action_type!r} is a Temporal workflow and runs only on the Temporal backend: "
        "set CONVEYOR_BACKEND=temporal and start `conveyor worker`"
    )


def task_queue(queue: str) -> str:
    """The Temporal task queue of Conveyor queue `queue`, from inside a started workflow.

    A workflow whose activities run on another queue than its own passes this as
    `task_queue=` to `workflow.execute_activity`.
    """
    prefix = workflow.memo_value(PREFIX_MEMO, "conveyor", type_hint=str)
    return names.activity_queue(prefix, queue)


@dataclasses.dataclass(frozen=True, eq=False)
class Action:
    """A hand-written Temporal workflow with its activities, registered as a Conveyor action.

    Args:
        task_queue: The queue the workflow (and, by default, its activities) runs on.
        workflow: A class decorated with `@workflow.defn`.
        activities: The functions decorated with `@activity.defn` that the workflow calls.
        task_queue_activities: The queue the activities run on, when not `task_queue` (a GPU
            queue for the heavy part, say); the workflow routes them there with `task_queue()`.
        action_type: The action's type; defaults to the workflow's name in snake case.
        name: A readable name; defaults to the workflow's name.
        description: Defaults to the first line of the workflow's docstring.
        version: A semantic version.
        category: Where the catalog lists it.
        timeout_seconds: How long a run of the workflow may take (none by default).

    Raises:
        InvalidActionError: the workflow, an activity or the run argument's type is not usable.
    """

    task_queue: str
    workflow: type
    activities: Sequence[Callable[..., Any]] = ()
    task_queue_activities: str | None = None
    action_type: str | None = None
    name: str | None = None
    description: str | None = None
    version: str = "1.0.0"
    category: str = "Temporal workflows"
    timeout_seconds: float | None = None

    def __repr__(self) -> str:
        workflow_class = f"{self.workflow.__module__}.{self.workflow.__qualname__}"
        return f"Action({workflow_class} on {self.task_queue})"

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_queue", str(self.task_queue))
        if self.task_queue_activities is not None:
            object.__setattr__(self, "task_queue_activities", str(self.task_queue_activities))
        object.__setattr__(self, "activities", tuple(self.activities))
        # Everything is checked now, so a wrong declaration fails at import, action named.
        self.meta  # noqa: B018

    @cached_property
    def _definition(self) -> Any:
        label = getattr(self.workflow, "__qualname__", repr(self.workflow))
        found = workflow._Definition.from_class(self.workflow)
        if found is None:
            raise InvalidActionError(
                self.action_type or "?",
                [f"workflow: {label} is not decorated with @workflow.defn"],
            )
        return found

    @property
    def workflow_name(self) -> str:
        """The workflow's name on the cluster."""
        name: str | None = self._definition.name
        if name is None:
            raise InvalidActionError(
                self.type, ["workflow: a dynamic workflow cannot be an action"]
            )
        return name

    @property
    def type(self) -> str:
        """The action's type."""
        if self.action_type is not None:
            return self.action_type
        return _snake(self._definition.name or "workflow")

    @property
    def activity_queue(self) -> str:
        """The queue the activities run on."""
        return self.task_queue_activities or self.task_queue

    @cached_property
    def input_type(self) -> builtins.type:
        """The type of the `@workflow.run` method's argument (a dataclass or a model)."""
        run = self._definition.run_fn
        try:
            hints = typing.get_type_hints(run)
        except Exception as exc:  # NameError or TypeError from an unresolvable annotation
            raise InvalidActionError(
                self.type, [f"workflow: the run method's annotations cannot be resolved: {exc}"]
            ) from exc
        arguments = list(run.__code__.co_varnames[1 : run.__code__.co_argcount])
        if len(arguments) != 1 or arguments[0] not in hints:
            raise InvalidActionError(
                self.type,
                [
                    "workflow: the @workflow.run method must take one annotated argument "
                    "(a dataclass or a pydantic model), as NOMAD's do"
                ],
            )
        hint = hints[arguments[0]]
        if not (isinstance(hint, type) and (issubclass(hint, BaseModel) or _is_dataclass(hint))):
            raise InvalidActionError(
                self.type,
                [f"workflow: the run argument is {hint!r}, not a dataclass or a pydantic model"],
            )
        return hint

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.input_type)

    @cached_property
    def meta(self) -> ActionMeta:
        """The action's metadata: params from the run argument's fields."""
        problems = [
            f"activities[{index}]: {getattr(fn, '__qualname__', fn)!r} is not decorated with "
            "@activity.defn"
            for index, fn in enumerate(self.activities)
            if activity._Definition.from_callable(fn) is None
        ]
        self.workflow_name  # noqa: B018 - raises for a dynamic workflow
        model = _as_model(self.input_type)
        params, param_problems = _params_of(model)
        problems.extend(param_problems)
        if problems:
            raise InvalidActionError(self.type, problems)
        doc = (self.workflow.__doc__ or "").strip().splitlines()
        return ActionMeta(
            type=self.type,
            version=self.version,
            name=self.name or self.workflow_name,
            description=self.description or (doc[0] if doc else f"Runs {self.workflow_name}"),
            category=self.category,
            queue=self.task_queue,
            params=params,
            outputs=_returned_outputs(self._definition.ret_type),
            dynamic_outputs=True,
            # Re-running the step attaches to the same workflow id: safe after a lost worker.
            idempotent=True,
            timeout_seconds=self.timeout_seconds,
        )

    @cached_property
    def executor_class(self) -> builtins.type[WorkflowActionExecutor]:
        """The executor the registry pairs with `meta` (one subclass per action)."""
        return types.new_class(
            f"{self.workflow.__name__}Executor",
            (WorkflowActionExecutor,),
            exec_body=lambda ns: ns.update(action=self, __module__=self.workflow.__module__),
        )

    def input_data(self, values: Mapping[str, Any]) -> Any:
        """`values` validated into the run argument's type.

        Raises:
            ParamValidationError: a field is missing or wrong, each problem naming its path.
        """
        try:
            return self._adapter.validate_python(dict(values))
        except ValidationError as exc:
            problems = [
                ParamProblem(".".join(str(part) for part in error["loc"]) or "data", error["msg"])
                for error in exc.errors(include_url=False)
            ]
            raise ParamValidationError(problems, self.type) from None


class WorkflowActionExecutor(BaseActionExecutor):
    """Starts the Action's workflow from the step's activity and waits for its result.

    `Action.executor_class` makes one subclass per action, with `action` set.
    """

    action: ClassVar[Action]

    def __init__(self) -> None:
        self._handle: WorkflowHandle[Any, Any] | None = None

    async def execute(self, context: ActionContext) -> ActionResult:
        """Start (or re-attach to) the workflow, wait for it, return its result as outputs."""
        action = self.action
        if not activity.in_activity():
            return ActionResult(success=False, error=needs_temporal_message(action.type))
        try:
            data = action.input_data(context.params)
        except ParamValidationError as exc:
            return ActionResult(success=False, error=str(exc))
        prefix = context.settings.temporal_task_queue_prefix if context.settings else "conveyor"
        index = "" if context.item_index is None else f".{context.item_index}"
        self._handle = handle = await activity.client().start_workflow(
            action.workflow_name,
            to_jsonable_python(data),
            id=f"{context.execution_id}.{context.step_id}{index}.{context.attempt}",
            task_queue=names.activity_queue(prefix, action.task_queue),
            # A retried step (its worker died) waits on the workflow already running.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            memo={PREFIX_MEMO: prefix, "conveyor_run": context.execution_id},
        )
        try:
            result = await handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return ActionResult(success=False, error=f"workflow {handle.id} failed: {cause}")
        return ActionResult(success=True, outputs=_outputs(result))

    async def cleanup(self, context: ActionContext) -> None:
        """Cancel the workflow when the step is cancelled."""
        if self._handle is not None:
            await self._handle.cancel()


def action_of(definition: ActionDefinition) -> Action | None:
    """The `Action` a registered definition stands for, if it is a NOMAD-shaped one."""
    executor = definition.executor_class
    if isinstance(executor, type) and issubclass(executor, WorkflowActionExecutor):
        return executor.action
    return None


def workflow_actions(registry: ActionRegistry) -> list[Action]:
    """The NOMAD-shaped actions of `registry`."""
    return [action for action in map(action_of, registry) if action is not None]


def _snake(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return re.sub(r"[^a-z0-9_]+", "_", snake).strip("_") or "workflow"


def _is_dataclass(hint: type) -> bool:
    return dataclasses.is_dataclass(hint)


def _as_model(kind: type) -> type[BaseModel]:
    """A pydantic model with the fields of `kind` (itself when it is a model)."""
    if issubclass(kind, BaseModel):
        return kind
    hints = typing.get_type_hints(kind, include_extras=True)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(kind):  # type: ignore[arg-type]
        info = _field_info(field)
        fields[field.name] = (hints.get(field.name, Any), info)
    model: type[BaseModel] = create_model(kind.__name__, __doc__=kind.__doc__, **fields)
    return model


def _field_info(field: dataclasses.Field[Any]) -> Any:
    description = field.metadata.get("description") if field.metadata else None
    if field.default is not dataclasses.MISSING:
        return Field(default=field.default, description=description)
    if field.default_factory is not dataclasses.MISSING:
        return Field(default_factory=field.default_factory, description=description)
    return Field(default=PydanticUndefined, description=description)


def _returned_outputs(kind: Any) -> list[Any]:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return _outputs_of(kind)
    if isinstance(kind, type) and _is_dataclass(kind):
        return _outputs_of(_as_model(kind))
    return []


def _outputs(result: Any) -> dict[str, Any]:
    """The step's outputs: the result's fields, or `result` for anything but an object."""
    value = to_jsonable_python(result)
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return value
    return {"result": value}
