from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from nomad_example.actions.gpuaction.activities import embed
    from nomad_example.actions.gpuaction.models import EmbedWorkflowInput


@workflow.defn
class EmbedWorkflow:
    @workflow.run
    async def run(self, data: EmbedWorkflowInput) -> list[float]:
        return await workflow.execute_activity(
            embed,
            data,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
