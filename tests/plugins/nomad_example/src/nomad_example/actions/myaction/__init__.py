from pydantic import Field
from temporalio import workflow

from conveyor.backends.temporal.nomad import TaskQueue

with workflow.unsafe.imports_passed_through():
    from conveyor.backends.temporal.nomad import ActionEntryPoint


class MyActionEntryPoint(ActionEntryPoint):
    task_queue: str = Field(
        default=TaskQueue.CPU, description="Determines the task queue for this action"
    )

    def load(self):
        from conveyor.backends.temporal.nomad import Action
        from nomad_example.actions.myaction.activities import get_request
        from nomad_example.actions.myaction.workflows import ExampleWorkflow

        return Action(
            task_queue=self.task_queue,
            workflow=ExampleWorkflow,
            activities=[get_request],
        )


my_action = MyActionEntryPoint(
    name="MyAction",
    description="My custom action.",
)
