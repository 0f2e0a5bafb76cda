"""Conveyor: a durable pipeline engine for pluggable actions.

    from conveyor import Client

    async with Client.local() as client:
        run_id = await client.start("examples/hello.yaml", {"who": "Ada"})
        run = await client.wait(run_id, timeout=30)

Plugin authors import from `conveyor.actions`; this module is for those who run pipelines.
"""

from conveyor.backends.local import LocalBackend
from conveyor.client import ActionStatus, Client
from conveyor.config import Settings
from conveyor.engine.state import RunStatus
from conveyor.errors import ConveyorError
from conveyor.events import Event, EventReceipt, RouteStatus
from conveyor.pipeline.loading import load_pipeline
from conveyor.pipeline.spec import PipelineSpec
from conveyor.pipeline.validation import validate_pipeline
from conveyor.runs import RunSummary, RunView, StepView

__version__ = "0.1.0"

__all__ = [
    "ActionStatus",
    "Client",
    "ConveyorError",
    "Event",
    "EventReceipt",
    "LocalBackend",
    "PipelineSpec",
    "RouteStatus",
    "RunStatus",
    "RunSummary",
    "RunView",
    "Settings",
    "StepView",
    "__version__",
    "load_pipeline",
    "validate_pipeline",
]
