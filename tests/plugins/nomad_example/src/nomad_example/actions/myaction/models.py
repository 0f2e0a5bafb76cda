from pydantic import BaseModel, Field

from conveyor.backends.temporal.nomad import BaseWorkflowInput


class ExampleWorkflowInput(BaseWorkflowInput):
    """Input model for the workflow"""

    cid: int = Field(..., description="PubChem compound identifier for a chemical compound.")
    base_url: str = Field(
        default="https://pubchem.ncbi.nlm.nih.gov", description="The PubChem server to ask."
    )


class GetRequestInput(BaseModel):
    """Input model for the activity"""

    url: str = Field(..., description="URL for get request.")
    timeout: int = Field(..., description="Timeout for the request.")
