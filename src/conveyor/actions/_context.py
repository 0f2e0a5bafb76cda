"""What an executor is handed: `ActionContext` for `execute()`, `EventContext` for `on_event()`.

Plain dataclasses rather than models: tests patch methods on them (`patch.object(context,
"invoke_service")`) and the engine builds one per attempt on the hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from conveyor.actions._services import Publisher, ServiceInvoker

if TYPE_CHECKING:
    from conveyor.config import Settings

ProgressSink = Callable[[float, str | None], Awaitable[None]]


class _BoundLater:
    """A structlog logger bound to run and step ids when first used.

    Binding costs more than many actions take to run, and most never log.
    """

    def __init__(self, **context: str) -> None:
        self._context = context
        self._logger: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._logger is None:
            self._logger = structlog.get_logger("conveyor.action").bind(**self._context)
        return getattr(self._logger, name)


@dataclass
class ActionContext:
    """Everything `execute()` may use.

    Attributes:
        step_id: The step's id in its pipeline.
        execution_id: The run's id (also available as `run_id`).
        params: This step's params, rendered and validated.
        workflow_params: The pipeline's params (also `pipeline_params`).
        step_outputs: Outputs of earlier steps, by step id.
        attempt: 1 for the first try, 2 for the first retry, ...
        deadline: When this attempt times out, if it has a timeout.
        item: For a `for_each` step, the item this execution handles.
        item_index: Its index in the list.
    """

    step_id: str
    execution_id: str
    params: dict[str, Any] = field(default_factory=dict)
    workflow_params: dict[str, Any] = field(default_factory=dict)
    step_outputs: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    deadline: datetime | None = None
    item: Any = None
    item_index: int | None = None
    action_type: str | None = None
    services: ServiceInvoker | None = None
    publisher: Publisher | None = None
    settings: Settings | None = None
    progress_sink: ProgressSink | None = None
    logger: Any = None

    def __post_init__(self) -> None:
        if self.logger is None:
            self.logger = _BoundLater(run_id=self.execution_id, step_id=self.step_id)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.execution_id

    @property
    def pipeline_params(self) -> dict[str, Any]:
        """The pipeline's params."""
        return self.workflow_params

    @property
    def callback_topic(self) -> str:
        """The topic external services should publish this step's events to."""
        return self._settings().callback_topic

    def _settings(self) -> Settings:
        if self.settings is None:
            from conveyor.config import Settings

            self.settings = Settings()
        return self.settings

    async def invoke_service(
        self,
        app_id: str,
        method_path: str,
        http_method: str = "POST",
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout_seconds: float = 30,
    ) -> Any:
        """Call another service's method and return its decoded JSON body.

        Goes through the configured invoker: a Dapr sidecar when one is configured, otherwise
        direct HTTP to the app id's base URL from settings.

        Raises:
            ServiceInvocationError: no answer, an error status (its body kept) or a timeout.
        """
        if self.services is None:
            from conveyor.actions.invokers import invoker_from_settings

            self.services = invoker_from_settings(self._settings())
        return await self.services.invoke(
            app_id,
            method_path,
            http_method=http_method,
            data=data,
            params=params,
            timeout_seconds=timeout_seconds,
        )

    async def publish(
        self, topic: str, data: Any, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Publish `data` to `topic` through the configured publisher."""
        if self.publisher is None:
            from conveyor.actions.publishers import publisher_from_settings

            self.publisher = publisher_from_settings(self._settings())
        await self.publisher.publish(topic, data, metadata)

    async def report_progress(self, percent: float, message: str | None = None) -> None:
        """Record this step's progress (0 to 100) while it runs."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent}")
        if self.progress_sink is not None:
            await self.progress_sink(float(percent), message)
        else:
            self.logger.info("progress", percent=percent, message=message)


@dataclass
class EventContext:
    """Everything `on_event()` may use.

    Attributes:
        step_execution_id: The id of the waiting step run.
        execution_id: The run's id.
        external_workflow_id: The correlation id the step waits on.
        event_type: The event's type (CloudEvents `type`, or the payload's `type`).
        event_data: The event's body.
        step_outputs: The outputs `execute()` returned for this step.
    """

    step_execution_id: str
    execution_id: str
    external_workflow_id: str
    event_type: str = ""
    event_data: dict[str, Any] = field(default_factory=dict)
    step_outputs: dict[str, Any] = field(default_factory=dict)
    step_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    logger: Any = None

    def __post_init__(self) -> None:
        if self.logger is None:
            self.logger = _BoundLater(
                run_id=self.execution_id, step_id=self.step_id or self.step_execution_id
            )

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.execution_id
