"""The HTTP service's side of lifecycle publishing: one dispatcher a service, and the checks
a run's start request goes through.

`install(service)` makes the service's `Dispatcher` and registers it to start and stop with
the service. `check_start` refuses (400, naming each field) targets that cannot work;
`attach` records a started run's targets, and `inherit` gives a retry its run's.

Publishing follows the embedded engine's commits, so a service on Temporal has no dispatcher
and refuses a run's targets (400) rather than accept what it would never deliver.
"""

from __future__ import annotations

from conveyor.api.errors import ApiError, FieldError
from conveyor.api.service import Service
from conveyor.publishing import Dispatcher, check_targets
from conveyor.publishing.specs import WebhookSpec


def install(service: Service) -> Dispatcher:
    """Give `service` (on the embedded backend) a dispatcher that starts and stops with it."""
    local = service.local
    if local is None:
        raise ValueError("lifecycle publishing needs the embedded backend")
    dispatcher = Dispatcher(local, service.store, service.settings)
    service.publishing = dispatcher

    async def start_publishing(_: Service) -> None:
        await dispatcher.start()

    async def stop_publishing(_: Service) -> None:
        await dispatcher.stop()

    service.on_start.append(start_publishing)
    service.on_stop.append(stop_publishing)
    return dispatcher


def dispatcher_of(service: Service) -> Dispatcher | None:
    """The service's dispatcher, if `install` gave it one."""
    return service.publishing


async def check_start(service: Service, topics: list[str], webhooks: list[WebhookSpec]) -> None:
    """Refuse a run's targets that cannot work, before the run starts.

    Raises:
        ApiError: 400 naming every bad topic and webhook URL (e.g. ``webhooks[0].url``).
    """
    if (topics or webhooks) and dispatcher_of(service) is None:
        if service.local is None:
            raise ApiError(
                400,
                "bad_request",
                "lifecycle publishing needs the embedded backend; this service runs on "
                f"{service.engine.name}: start the run without callback_topics and webhooks",
                fields=_target_fields(topics, webhooks, "needs the embedded backend"),
            )
        raise ApiError(400, "bad_request", "this service does not publish run lifecycles")
    problems = await check_targets(service.settings, topics, webhooks)
    if problems:
        raise ApiError(
            400,
            "invalid_targets",
            "the run's callback topics or webhooks cannot be used",
            fields=[FieldError(path=path, message=message) for path, message in problems],
        )


def _target_fields(
    topics: list[str], webhooks: list[WebhookSpec], message: str
) -> list[FieldError]:
    return [
        *(FieldError(path=f"callback_topics[{i}]", message=message) for i in range(len(topics))),
        *(FieldError(path=f"webhooks[{i}].url", message=message) for i in range(len(webhooks))),
    ]


def attach(service: Service, run_id: str, topics: list[str], webhooks: list[WebhookSpec]) -> None:
    """Publish `run_id`'s lifecycle to `topics` and `webhooks` (nothing when both are empty)."""
    dispatcher = dispatcher_of(service)
    if dispatcher is not None and (topics or webhooks):
        dispatcher.attach(run_id, topics, webhooks)


def inherit(service: Service, run_id: str, from_run_id: str) -> None:
    """Publish the lifecycle of `run_id`, a retry of `from_run_id`, where the first one's went."""
    dispatcher = dispatcher_of(service)
    if dispatcher is not None:
        dispatcher.inherit(run_id, from_run_id)
