import torch  # the gpu-action extra: installed on GPU workers only
from temporalio import activity

from nomad_example.actions.gpuaction.models import EmbedWorkflowInput


@activity.defn
async def embed(data: EmbedWorkflowInput) -> list[float]:
    """An embedding of the structure."""
    return torch.rand(data.dimensions).tolist()
