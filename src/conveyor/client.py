"""One Python API over any backend: start, get, wait, cancel, send events, list runs.

    async with Client.local(db_path="conveyor.db") as client:
        run_id = await client.start("examples/hello.yaml", {"who": "Ada"})
        run = await client.wait(run_id, timeout=30)

NOMAD-style helpers (`start_action`, `get_action_status`, ...) run one action by name.

Names: NOMAD's own API keeps NOMAD's words (`get_action_status` answers Temporal's
`CANCELED`); everything else says "run" for a run and "cancelled" for its status, as
`RunStatus` does. `list_action_runs` lists single-action runs; the action catalog is the
registry's (`conveyor actions list`, `GET /actions`).
"""

from __future__ import annotations

import base64
import binascii
import sys
import warnings
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from conveyor.backends.base import Backend
from conveyor.engine.state import RunStatus
from conveyor.errors import EngineBusyError, PipelineValidationError, RunNotFoundError
from conveyor.events import Event, EventReceipt
from conveyor.pipeline.spec import PipelineSpec
from conveyor.runs import RunSummary, RunView

if TYPE_CHECKING:
    from conveyor.actions import ActionDefinition

ACTION_STEP = "action"


class ActionStatus(StrEnum):
    """A single-action run's status, in the names NOMAD's `get_action_status` uses.

    They are Temporal's `WorkflowExecutionStatus` names, which NOMAD code compares with
    (`status.name == "CANCELED"`). `CANCELLED` is the same member, spelled as `RunStatus`
    spells it.
    """

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    CANCELLED = "CANCELED"
    """An alias of `CANCELED`."""
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"
    UNKNOWN = "UNKNOWN"
    """The backend does not know the id: never started, or past Temporal's retention."""


_ACTION_STATUS = {
    RunStatus.PENDING: ActionStatus.RUNNING,
    RunStatus.RUNNING: ActionStatus.RUNNING,
    RunStatus.COMPLETED: ActionStatus.COMPLETED,
    RunStatus.FAILED: ActionStatus.FAILED,
    RunStatus.CANCELLED: ActionStatus.CANCELED,
    RunStatus.TIMED_OUT: ActionStatus.TIMED_OUT,
}

# Temporal's execution statuses by name, so this module needs no temporalio import.
_TEMPORAL_ACTION_STATUS = {
    "RUNNING": ActionStatus.RUNNING,
    "CONTINUED_AS_NEW": ActionStatus.RUNNING,
    "COMPLETED": ActionStatus.COMPLETED,
    "FAILED": ActionStatus.FAILED,
    "CANCELED": ActionStatus.CANCELED,
    "TERMINATED": ActionStatus.TERMINATED,
    "TIMED_OUT": ActionStatus.TIMED_OUT,
}


class ActionRunSummary(BaseModel):
    """One single-action run in a list of a user's action runs."""

    run_id: str
    action: str
    status: ActionStatus
    owner: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class ActionRunPage(BaseModel):
    """A page of `Client.list_action_runs`; pass `next_page_token` back for the next one."""

    runs: list[ActionRunSummary]
    next_page_token: str | None = None

    @property
    def actions(self) -> list[ActionRunSummary]:
        """Deprecated: the runs of this page (use `runs`)."""
        warnings.warn(
            "ActionRunPage.actions is deprecated: use .runs", DeprecationWarning, stacklevel=2
        )
        return self.runs


ActionSummary = ActionRunSummary
"""Deprecated name of `ActionRunSummary`."""
ActionPage = ActionRunPage
"""Deprecated name of `ActionRunPage`."""


class Client:
    """The Python API over a backend. Use as an async context manager to start and stop it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def local(cls, db_path: str | Path | None = None, **options: Any) -> Client:
        """A client over the embedded backend (SQLite at `db_path`, or the configured default).

        Entering it raises `EngineBusyError` when another engine (`conveyor serve`) holds the
        database: talk to that server with `Client.remote` instead.
        """
        from conveyor.backends.local import LocalBackend

        return cls(LocalBackend(db_path=db_path, **options))

    @classmethod
    def remote(cls, url: str, api_key: str | None = None, **options: Any) -> Client:
        """A client of a Conveyor server (`conveyor serve`) at `url`, over its REST API and
        SSE, with the methods of the local client. Runs belong to the key's owner.

        Args:
            url: The server's base URL, e.g. ``http://127.0.0.1:8080``.
            api_key: An API key (`conveyor keys create`); None for an `--insecure` server.
            options: `timeout` (seconds a request may take) and `transport` (an httpx one).
        """
        from conveyor.backends.remote import RemoteBackend
        from conveyor.remote_client import RemoteClient

        return RemoteClient(RemoteBackend(url, api_key, **options))

    async def __aenter__(self) -> Client:
        try:
            await self.backend.start()
        except EngineBusyError as exc:
            # One error that says what to do, not the engine's internals chained behind it.
            raise EngineBusyError(
                f"{exc}. If that is a server (`conveyor serve`), use it through "
                "Client.remote(url, api_key)"
            ) from None
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
        if isinstance(pipeline_or_action, str) and await self._is_action(pipeline_or_action):
            spec = action_pipeline(pipeline_or_action, values or {})
            return await self.backend.start_run(spec, values, kind="action", **options)
        return await self.backend.start_run(_as_spec(pipeline_or_action), values, **options)

    async def _is_action(self, name: str) -> bool:
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
        """Runs matching `status`, `pipeline`, `owner`, `kind`, `trigger` (manual, schedule,
        webhook, event), `trigger_id`, `created_after/before`."""
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

    async def start_action(
        self,
        action_name: str,
        data: Mapping[str, Any] | BaseModel | Any,
        *,
        owner: str | None = None,
    ) -> str:
        """Start one action with `data` as its params; returns the run id.

        `data` is a mapping, a Pydantic model or a dataclass (a NOMAD workflow's input).

        Raises:
            UnknownActionError: no action of that name is installed.
            ParamValidationError: `data` breaks the action's params, each field named;
                nothing was started.
            PipelineValidationError: the action cannot run on this backend.
        """
        values = _as_values(data)
        action_name = self._check_action(action_name, values)
        return await self.backend.start_run(
            action_pipeline(action_name, values), values, kind="action", owner=owner
        )

    def _check_action(self, action_name: str, values: Mapping[str, Any]) -> str:
        """Refuse bad data and a backend that cannot run the action, before anything starts.

        Returns the action's type (`action_name` may be the id of its entry point).
        """
        from conveyor.actions import validated_params

        registry = getattr(self.backend, "registry", None)
        if registry is None:
            return action_name
        definition: ActionDefinition = registry.get(action_name)
        validated_params(definition.meta, values)
        nomad = sys.modules.get("conveyor.backends.temporal.nomad")
        if nomad is None:
            return definition.type  # Nothing imported it: no NOMAD-shaped action is registered.
        action = nomad.action_of(definition)
        if action is None:
            return definition.type
        # The input type may check more than the params can say (nested fields, validators).
        action.input_data(values)
        if not _on_temporal(self.backend):
            from conveyor.pipeline.validation import ValidationIssue

            raise PipelineValidationError(
                [ValidationIssue("steps[0].action", nomad.needs_temporal_message(definition.type))]
            )
        return definition.type

    async def get_action_status(self, run_id: str) -> ActionStatus:
        """RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT, or UNKNOWN for an id
        the backend does not know (never started, or past Temporal's retention)."""
        if _on_temporal(self.backend):
            return await _temporal_action_status(self.backend, run_id)
        try:
            view = await self.backend.get(run_id)
        except RunNotFoundError:
            return ActionStatus.UNKNOWN
        return _ACTION_STATUS[view.status]

    async def get_action_result(self, run_id: str) -> Any:
        """The outputs of a finished single-action run (None while it runs)."""
        view = await self.backend.get(run_id)
        if not view.status.is_terminal:
            return None
        return view.step(ACTION_STEP).outputs

    async def stop_action(self, run_id: str) -> ActionStatus:
        """Cancel a single-action run; UNKNOWN when there is no such run."""
        try:
            view = await self.backend.cancel(run_id)
        except RunNotFoundError:
            return ActionStatus.UNKNOWN
        return _ACTION_STATUS[view.status]

    async def list_actions(
        self,
        *,
        owner: str | None = None,
        page_size: int = 50,
        next_page_token: str | None = None,
    ) -> ActionRunPage:
        """Deprecated: `list_action_runs` (this name read as the catalog of actions)."""
        warnings.warn(
            "Client.list_actions is deprecated: use list_action_runs (it lists runs)",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.list_action_runs(
            owner=owner, page_size=page_size, next_page_token=next_page_token
        )

    async def list_action_runs(
        self,
        *,
        owner: str | None = None,
        page_size: int = 50,
        next_page_token: str | None = None,
    ) -> ActionRunPage:
        """The single-action runs (of `owner`, when given), newest first, a page at a time.

        Raises:
            ValueError: `page_size` is not in 1..1000, or `next_page_token` is not one this
                method returned.
        """
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size: must be between 1 and 1000, got {page_size}")
        offset = _offset_of(next_page_token)
        runs = await self.backend.list_runs(
            owner=owner, kind="action", limit=page_size + 1, offset=offset
        )
        more = len(runs) > page_size
        return ActionRunPage(
            runs=[
                ActionRunSummary(
                    run_id=run.run_id,
                    action=run.pipeline.removeprefix("action:"),
                    status=_ACTION_STATUS[run.status],
                    owner=run.owner,
                    created_at=run.created_at,
                    finished_at=run.finished_at,
                )
                for run in runs[:page_size]
            ],
            next_page_token=_token_of(offset + page_size) if more else None,
        )


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


def _as_values(data: Mapping[str, Any] | BaseModel | Any) -> dict[str, Any]:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, Mapping):
        return dict(data)
    from pydantic_core import to_jsonable_python

    values = to_jsonable_python(data)
    if not isinstance(values, dict):
        raise TypeError(f"data: expected a mapping, a model or a dataclass, got {type(data)}")
    return values


def _token_of(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset_of(token: str | None) -> int:
    if token is None:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValueError("next_page_token: not a token list_action_runs returned")


def _on_temporal(backend: Backend) -> bool:
    # Only a process that imported the Temporal backend can hold one: no temporalio needed.
    module = sys.modules.get("conveyor.backends.temporal.backend")
    return module is not None and isinstance(backend, module.TemporalBackend)


async def _temporal_action_status(backend: Any, run_id: str) -> ActionStatus:
    """The status Temporal itself records, so TERMINATED and TIMED_OUT show (no worker needed)."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        described = await backend.client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return ActionStatus.UNKNOWN
        raise
    if described.status is None:
        return ActionStatus.UNKNOWN
    return _TEMPORAL_ACTION_STATUS.get(described.status.name, ActionStatus.UNKNOWN)


def _as_spec(source: PipelineSpec | Mapping[str, Any] | str | Path) -> PipelineSpec:
    if isinstance(source, PipelineSpec):
        return source
    from conveyor.pipeline.loading import load_pipeline

    return load_pipeline(source if not isinstance(source, Mapping) else dict(source))
