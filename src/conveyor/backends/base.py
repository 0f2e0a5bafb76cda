"""What every backend offers the client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from conveyor.events import Event, EventReceipt
from conveyor.pipeline.spec import PipelineSpec
from conveyor.runs import RunSummary, RunTrigger, RunView


class Backend(Protocol):
    """Runs pipelines: the embedded `LocalBackend`, or the Temporal one."""

    async def start(self) -> None:
        """Get ready (connect, resume unfinished runs)."""
        ...

    async def stop(self) -> None:
        """Stop; unfinished runs resume on the next start."""
        ...

    async def start_run(
        self,
        pipeline: PipelineSpec,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        owner: str | None = None,
        labels: Mapping[str, str] | None = None,
        kind: str = "pipeline",
        trigger: RunTrigger | None = None,
    ) -> str:
        """Start a run; with a used idempotency key, return the first run's id."""
        ...

    async def get(self, run_id: str) -> RunView:
        """The run with its steps."""
        ...

    async def wait(self, run_id: str, timeout: float | None = None) -> RunView:
        """Wait for the run to end."""
        ...

    async def cancel(self, run_id: str, reason: str = "cancelled") -> RunView:
        """Cancel the run."""
        ...

    async def send_event(self, event: Event | Mapping[str, Any]) -> EventReceipt:
        """Store and route an event."""
        ...

    async def list_runs(
        self,
        *,
        status: list[str] | None = None,
        pipeline: str | None = None,
        owner: str | None = None,
        kind: str | None = None,
        trigger: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs matching the filters, newest first."""
        ...
