from pydantic import Field
from temporalio import workflow

from conveyor.backends.temporal.nomad import TaskQueue

with workflow.unsafe.imports_passed_through():
    from conveyor.backends.temporal.nomad import ActionEntryPoint


class GpuActionEntryPoint(ActionEntryPoint):
    task_queue: str = Field(
        default=TaskQueue.GPU, description="Determines the task queue for this action"
    )

    def load(self):
        from conveyor.backends.temporal.nomad import Action
        from nomad_example.actions.gpuaction.activities import embed
        from nomad_example.actions.gpuaction.workflows import EmbedWorkflow

        return Action(
            task_queue=self.task_queue,
            workflow=EmbedWorkflow,
            activities=[embed],
        )


gpu_action = GpuActionEntryPoint(
    name="EmbedStructure",
    description="Embeds a structure on the GPU.",
)
