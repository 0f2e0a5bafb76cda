"""`Action`: a hand-written Temporal workflow and its activities, run as a Conveyor action.

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
from typing import Any, ClassVar, Protocol

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
        return run_input_type(self._definition.run_fn, self.type)

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
        if problems:
            raise InvalidActionError(self.type, problems)
        doc = (self.workflow.__doc__ or "").strip().splitlines()
        return workflow_meta(
            type=self.type,
            version=self.version,
            name=self.name or self.workflow_name,
            description=self.description or (doc[0] if doc else f"Runs {self.workflow_name}"),
            category=self.category,
            queue=self.task_queue,
            input_type=self.input_type,
            return_type=self._definition.ret_type,
            timeout_seconds=self.timeout_seconds,
        )

    @cached_property
    def executor_class(self) -> builtins.type[WorkflowActionExecutor]:
        """The executor the registry pairs with `meta` (one subclass per action)."""
        return executor_for(self, self.workflow.__name__, self.workflow.__module__)

    def loaded(self) -> Action:
        """Itself: an `Action` is loaded when it exists (see `ActionEntryPoint.loaded`)."""
        return self

    def input_data(self, values: Mapping[str, Any]) -> Any:
        """`values` validated into the run argument's type.

        Raises:
            ParamValidationError: a field is missing or wrong, each problem naming its path.
        """
        return validate_input(self._adapter, values, self.type)


class WorkflowSource(Protocol):
    """What runs a hand-written workflow as an action: an `Action`, or an `ActionEntryPoint`
    that loads one when a process first needs it."""

    @property
    def task_queue(self) -> str:
        """The queue the workflow runs on."""

    @property
    def type(self) -> str:
        """The action's type."""

    @property
    def activity_queue(self) -> str:
        """The queue the activities run on."""

    def input_data(self, values: Mapping[str, Any]) -> Any:
        """`values` validated into the workflow's input type."""

    def loaded(self) -> Action:
        """The `Action`, with its workflow and activities imported."""


def run_input_type(run: Callable[..., Any], action_type: str) -> type:
    """The type of a `@workflow.run` method's one argument, checked.

    Raises:
        InvalidActionError: the argument is missing, unannotated, or not a dataclass or a model.
    """
    try:
        hints = typing.get_type_hints(run)
    except Exception as exc:  # NameError or TypeError from an unresolvable annotation
        raise InvalidActionError(
            action_type, [f"workflow: the run method's annotations cannot be resolved: {exc}"]
        ) from exc
    arguments = list(run.__code__.co_varnames[1 : run.__code__.co_argcount])
    if len(arguments) != 1 or arguments[0] not in hints:
        raise InvalidActionError(
            action_type,
            [
                "workflow: the @workflow.run method must take one annotated argument "
                "(a dataclass or a pydantic model), as NOMAD's do"
            ],
        )
    return checked_input_type(hints[arguments[0]], action_type)


def checked_input_type(hint: Any, action_type: str) -> type:
    """`hint` when it is a dataclass or a Pydantic model.

    Raises:
        InvalidActionError: it is anything else.
    """
    if not (isinstance(hint, type) and (issubclass(hint, BaseModel) or _is_dataclass(hint))):
        raise InvalidActionError(
            action_type,
            [f"workflow: the run argument is {hint!r}, not a dataclass or a pydantic model"],
        )
    return hint


def workflow_meta(
    *,
    type: str,
    version: str,
    name: str,
    description: str,
    category: str,
    queue: str,
    input_type: builtins.type,
    return_type: Any,
    timeout_seconds: float | None,
) -> ActionMeta:
    """The metadata of a workflow action: params from its input type's fields.

    Raises:
        InvalidActionError: a field of the input type cannot be a param.
    """
    params, problems = _params_of(_as_model(input_type))
    if problems:
        raise InvalidActionError(type, problems)
    return ActionMeta(
        type=type,
        version=version,
        name=name,
        description=description,
        category=category,
        queue=queue,
        params=params,
        outputs=_returned_outputs(return_type),
        dynamic_outputs=True,
        # Re-running the step attaches to the same workflow id: safe after a lost worker.
        idempotent=True,
        timeout_seconds=timeout_seconds,
    )


def validate_input(adapter: TypeAdapter[Any], values: Mapping[str, Any], action_type: str) -> Any:
    """`values` validated by `adapter`; each problem names its path.

    Raises:
        ParamValidationError: a field is missing or wrong.
    """
    try:
        return adapter.validate_python(dict(values))
    except ValidationError as exc:
        problems = [
            ParamProblem(".".join(str(part) for part in error["loc"]) or "data", error["msg"])
            for error in exc.errors(include_url=False)
        ]
        raise ParamValidationError(problems, action_type) from None


def executor_for(
    source: WorkflowSource, label: str, module: str
) -> builtins.type[WorkflowActionExecutor]:
    """A `WorkflowActionExecutor` subclass that runs `source`'s workflow."""
    return types.new_class(
        f"{label}Executor",
        (WorkflowActionExecutor,),
        exec_body=lambda ns: ns.update(source=source, __module__=module),
    )


class WorkflowActionExecutor(BaseActionExecutor):
    """Starts the Action's workflow from the step's activity and waits for its result.

    `executor_for` makes one subclass per action, with `source` set; the workflow is loaded
    (`source.loaded()`) only when a step runs.
    """

    source: ClassVar[WorkflowSource]

    def __init__(self) -> None:
        self._handle: WorkflowHandle[Any, Any] | None = None

    async def execute(self, context: ActionContext) -> ActionResult:
        """Start (or re-attach to) the workflow, wait for it, return its result as outputs."""
        source = self.source
        if not activity.in_activity():
            return ActionResult(success=False, error=needs_temporal_message(source.type))
        try:
            data = source.input_data(context.params)
        except ParamValidationError as exc:
            return ActionResult(success=False, error=str(exc))
        action = source.loaded()
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


def action_of(definition: ActionDefinition) -> WorkflowSource | None:
    """The `Action` (or `ActionEntryPoint`) a registered definition stands for, if it is a
    NOMAD-shaped one. An entry point's workflow is not loaded by this."""
    executor = definition.executor_class
    if isinstance(executor, type) and issubclass(executor, WorkflowActionExecutor):
        return executor.source
    return None


def workflow_actions(registry: ActionRegistry) -> list[WorkflowSource]:
    """The NOMAD-shaped actions of `registry` (entry points not loaded)."""
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
