"""One Python API over any backend: start, get, wait, cancel, send events, list runs.

    async with Client.local(db_path="conveyor.db") as client:
        run_id = await client.start("examples/hello.yaml", {"name": "Ada"})
        run = await client.wait(run_id, timeout=30)

NOMAD-style helpers (`start_action`, `get_action_status`, ...) run one action by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from conveyor.backends.base import Backend
from conveyor.engine.state import RunStatus
from conveyor.events import Event, EventReceipt
from conveyor.pipeline.spec import PipelineSpec
from conveyor.runs import RunSummary, RunView

ACTION_STEP = "action"


class ActionStatus(StrEnum):
    """A single-action run's status, in the names NOMAD's `get_action_status` uses."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"


_ACTION_STATUS = {
    RunStatus.PENDING: ActionStatus.RUNNING,
    RunStatus.RUNNING: ActionStatus.RUNNING,
    RunStatus.COMPLETED: ActionStatus.COMPLETED,
    RunStatus.FAILED: ActionStatus.FAILED,
    RunStatus.CANCELLED: ActionStatus.CANCELED,
    RunStatus.TIMED_OUT: ActionStatus.TIMED_OUT,
}


class Client:
    """The Python API over a backend. Use as an async context manager to start and stop it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def local(cls, db_path: str | Path | None = None, **options: Any) -> Client:
        """A client over the embedded backend (SQLite at `db_path`, or the configured default)."""
        from conveyor.backends.local import LocalBackend

        return cls(LocalBackend(db_path=db_path, **options))

    async def __aenter__(self) -> Client:
        await self.backend.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.backend.stop()

    async def start(
        self,
        pipeline_or_action: PipelineSpec | Mapping[str, Any] | str | Path,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        idempotency_key: str | None = None,
        owner: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Start a pipeline (a spec, a document, or a YAML/JSON file) or one action by type.

        Returns:
            The run's id (the first run's, for an idempotency key used before).
        """
        values = params.model_dump(mode="json") if isinstance(params, BaseModel) else params
        options: dict[str, Any] = {
            "idempotency_key": idempotency_key,
            "owner": owner,
            "labels": labels,
        }
        if isinstance(pipeline_or_action, str) and self._is_action(pipeline_or_action):
            spec = action_pipeline(pipeline_or_action, values or {})
            return await self.backend.start_run(spec, values, kind="action", **options)
        return await self.backend.start_run(_as_spec(pipeline_or_action), values, **options)

    def _is_action(self, name: str) -> bool:
        registry = getattr(self.backend, "registry", None)
        return registry is not None and name in registry and not Path(name).suffix

    async def get(self, run_id: str) -> RunView:
        """The run with its steps, progress and ETA."""
        return await self.backend.get(run_id)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunView:
        """Wait for the run to end (raises TimeoutError past `timeout`)."""
        return await self.backend.wait(run_id, timeout)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> RunView:
        """Cancel the run; running steps are cancelled and their `cleanup()` called."""
        return await self.backend.cancel(run_id, reason)

    async def send_event(self, event: Event | Mapping[str, Any]) -> EventReceipt:
        """Send an event (stored before this returns); the receipt says how it was routed."""
        return await self.backend.send_event(event)

    async def list_runs(self, **filters: Any) -> list[RunSummary]:
        """Runs matching `status`, `pipeline`, `owner`, `kind`, `created_after/before`."""
        return await self.backend.list_runs(**filters)

    async def run_action(
        self,
        action_type: str,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        timeout: float | None = None,
    ) -> RunView:
        """Run one action to the end and return the run."""
        values = params.model_dump(mode="json") if isinstance(params, BaseModel) else params
        run_id = await self.backend.start_run(
            action_pipeline(action_type, values or {}), values, kind="action"
        )
        return await self.backend.wait(run_id, timeout)

    # NOMAD's names -------------------------------------------------------------

    async def start_action(self, action_name: str, data: Mapping[str, Any] | BaseModel) -> str:
        """Start one action with `data` as its params; returns the run id."""
        values = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
        return await self.backend.start_run(
            action_pipeline(action_name, values), values, kind="action"
        )

    async def get_action_status(self, run_id: str) -> ActionStatus:
        """RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED or TIMED_OUT."""
        return _ACTION_STATUS[(await self.backend.get(run_id)).status]

    async def get_action_result(self, run_id: str) -> Any:
        """The outputs of a finished single-action run (None while it runs)."""
        view = await self.backend.get(run_id)
        if not view.status.is_terminal:
            return None
        return view.step(ACTION_STEP).outputs

    async def stop_action(self, run_id: str) -> ActionStatus:
        """Cancel a single-action run."""
        return _ACTION_STATUS[(await self.backend.cancel(run_id)).status]


def action_pipeline(action_type: str, params: Mapping[str, Any]) -> PipelineSpec:
    """The one-step pipeline that runs `action_type` with the run's params.

    The step reads each value from the run's params (`{{ params.x }}`) rather than holding it,
    so a value is never evaluated as a template and keeps its type.
    """
    from conveyor.pipeline.spec import ParameterSpec, PipelineParamType, StepSpec

    return PipelineSpec(
        name=f"action:{action_type}",
        parameters=[ParameterSpec(name=name, type=PipelineParamType.ANY) for name in params],
        steps=[
            StepSpec(
                id=ACTION_STEP,
                action=action_type,
                params={name: "{{ params." + name + " }}" for name in params},
            )
        ],
    )


def _as_spec(source: PipelineSpec | Mapping[str, Any] | str | Path) -> PipelineSpec:
    if isinstance(source, PipelineSpec):
        return source
    from conveyor.pipeline.loading import load_pipeline

    return load_pipeline(source if not isinstance(source, Mapping) else dict(source))
