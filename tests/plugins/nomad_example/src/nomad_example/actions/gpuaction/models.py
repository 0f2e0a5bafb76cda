from pydantic import Field

from conveyor.backends.temporal.nomad import BaseWorkflowInput


class EmbedWorkflowInput(BaseWorkflowInput):
    """Input model for the workflow"""

    smiles: str = Field(..., description="The structure, as SMILES.")
    dimensions: int = Field(default=128, ge=1, description="The embedding's size.")
