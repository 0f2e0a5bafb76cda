"""NOMAD actions on Conveyor: a hand-written Temporal workflow and its activities, as an action.

A NOMAD action ports by changing its imports and its entry-point group::

    from conveyor.backends.temporal.nomad import Action, ActionEntryPoint, TaskQueue

    class MyActionEntryPoint(ActionEntryPoint):
        task_queue: str = Field(default=TaskQueue.CPU)

        def load(self):
            from nomad_example.actions.myaction.activities import get_request
            from nomad_example.actions.myaction.workflows import ExampleWorkflow

            return Action(task_queue=self.task_queue, workflow=ExampleWorkflow,
                          activities=[get_request])

    my_action = MyActionEntryPoint(name="MyAction", description="My custom action.")

    # pyproject.toml
    [project.entry-points."conveyor.actions"]
    myaction = "nomad_example.actions.myaction:my_action"

A module-level `Action(...)` works as an entry point too. `conveyor.backends.temporal.nomad.utils`
has NOMAD's synchronous `start_action`, `get_action_status`, `get_action_result` and
`stop_action`.
"""

from conveyor.backends.temporal.nomad._action import (
    Action,
    TaskQueue,
    WorkflowActionExecutor,
    WorkflowSource,
    action_of,
    needs_temporal_message,
    task_queue,
    workflow_actions,
)
from conveyor.backends.temporal.nomad._entry_point import ActionEntryPoint, BaseWorkflowInput

__all__ = [
    "Action",
    "ActionEntryPoint",
    "BaseWorkflowInput",
    "TaskQueue",
    "WorkflowActionExecutor",
    "WorkflowSource",
    "action_of",
    "needs_temporal_message",
    "task_queue",
    "workflow_actions",
]
