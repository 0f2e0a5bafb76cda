"""`ActionEntryPoint`: NOMAD's entry point for an action, whose `load()` returns the `Action`.

The entry point is what the ``conveyor.actions`` entry-point group names; its `load()` imports
the workflow and the activities, and with them the queue's optional dependencies. So it is
called only in a process that runs the action (a worker of its queue, when a step starts or
the worker registers the workflow), once per process. Listing the catalog, validating
`start_action`'s data and choosing a worker's actions use the entry point's fields and the
workflow's input type, read from the sources without importing the workflow's module
(`_static`); when the sources do not say it plainly, the action is loaded to learn it.
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter

from conveyor.actions import ActionMeta
from conveyor.backends.temporal.nomad._action import (
    Action,
    TaskQueue,
    WorkflowActionExecutor,
    _snake,
    checked_input_type,
    executor_for,
    validate_input,
    workflow_meta,
)
from conveyor.backends.temporal.nomad._static import WorkflowTypes, read_workflow_types
from conveyor.errors import InvalidActionError


class BaseWorkflowInput(BaseModel):
    """Base input model for workflows: who started it, for which upload (NOMAD's fields)."""

    upload_id: str = Field(
        ...,
        description="Unique identifier for the upload associated with the workflow.",
    )
    user_id: str = Field(
        ..., description="Unique identifier for the user who initiated the workflow."
    )


class ActionEntryPoint(BaseModel):
    """An action's entry point: its name, description and queue, and `load()` for the rest.

    Subclass it, add configurable fields, and return the `Action` from `load()`, importing the
    workflow and activities inside it::

        class MyActionEntryPoint(ActionEntryPoint):
            task_queue: str = Field(default=TaskQueue.CPU)

            def load(self):
                from my_pkg.workflows import ExampleWorkflow
                ...
                return Action(task_queue=self.task_queue, workflow=ExampleWorkflow, ...)

    The action's type is `action_type`, or `name` in snake case (``MyAction`` → ``my_action``);
    it is also addressable by its entry point's id, ``package.module:object``.
    """

    name: str = Field(description="The action's readable name.")
    description: str | None = Field(default=None, description="What the action does.")
    task_queue: str = Field(
        default=TaskQueue.CPU, description="The queue the workflow (and its activities) run on."
    )
    task_queue_activities: str | None = Field(
        default=None,
        description="The queue the activities run on, when not `task_queue`.",
    )
    action_type: str | None = Field(
        default=None, description="The action's type; default: `name` in snake case."
    )
    version: str = "1.0.0"
    category: str = "Temporal workflows"
    timeout_seconds: float | None = None

    _loaded: Action | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def load(self) -> Action:
        """The `Action`; override it, importing the workflow and its activities inside."""
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    @property
    def type(self) -> str:
        """The action's type."""
        return self.action_type or _snake(self.name)

    @property
    def activity_queue(self) -> str:
        """The queue the activities run on."""
        return str(self.task_queue_activities or self.task_queue)

    def loaded(self) -> Action:
        """The `Action` `load()` returns, loaded once per process, checked against the fields.

        Raises:
            InvalidActionError: `load()` returned something else, or an Action on other queues.
        """
        with self._lock:
            if self._loaded is None:
                self._loaded = self._checked(self.load())
            return self._loaded

    def _checked(self, action: object) -> Action:
        if not isinstance(action, Action):
            raise InvalidActionError(self.type, [f"load(): returned {action!r}, not an Action"])
        problems = [
            f"load(): the Action's {field} is {mine!r}, the entry point's is {theirs!r}"
            for field, mine, theirs in (
                ("task_queue", action.task_queue, str(self.task_queue)),
                ("activity queue", action.activity_queue, self.activity_queue),
            )
            if mine != theirs
        ]
        if problems:
            raise InvalidActionError(self.type, problems)
        # The entry point names and describes the action, as it does in NOMAD.
        return dataclasses.replace(
            action,
            action_type=self.type,
            name=self.name,
            description=self.description or action.description,
            version=self.version,
            category=self.category,
            timeout_seconds=self.timeout_seconds,
        )

    @cached_property
    def _types(self) -> WorkflowTypes:
        found = read_workflow_types(type(self).load)
        if found is not None:
            return found
        action = self.loaded()
        return WorkflowTypes(action.input_type, action._definition.ret_type)

    @cached_property
    def input_type(self) -> builtins.type:
        """The type of the workflow's run argument, read without loading when possible."""
        return checked_input_type(self._types.input_type, self.type)

    @cached_property
    def meta(self) -> ActionMeta:
        """The action's metadata, from the fields and the workflow's input type."""
        return workflow_meta(
            type=self.type,
            version=self.version,
            name=self.name,
            description=self.description or f"Runs {self.name}",
            category=self.category,
            queue=str(self.task_queue),
            input_type=self.input_type,
            return_type=self._types.return_type,
            timeout_seconds=self.timeout_seconds,
        )

    @cached_property
    def executor_class(self) -> builtins.type[WorkflowActionExecutor]:
        """The executor the registry pairs with `meta`; it loads the action when it runs."""
        return executor_for(self, type(self).__name__, type(self).__module__)

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.input_type)

    def input_data(self, values: Mapping[str, Any]) -> Any:
        """`values` validated into the workflow's input type.

        Raises:
            ParamValidationError: a field is missing or wrong, each problem naming its path.
        """
        return validate_input(self._adapter, values, self.type)
