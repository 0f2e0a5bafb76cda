"""``notify``: publish a message to a topic (Dapr pub/sub, or a webhook URL per topic).

Goes through `ActionContext.publish`, so the destination is the engine's configuration:
a Dapr sidecar when ``CONVEYOR_DAPR_HTTP_ENDPOINT`` is set, otherwise the URL that
``CONVEYOR_TOPIC_URLS`` gives the topic.
"""

from __future__ import annotations

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type
from conveyor.errors import ConfigurationError, ServiceInvocationError


class NotifyExecutor(BaseActionExecutor):
    """Publishes `message` to `topic` with optional `metadata`."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Publish; a refused or unconfigured publish is a failed result saying why."""
        params = context.params
        topic = str(params.get("topic") or "").strip()
        outputs = {"topic": topic, "published": False}
        if not topic:
            return ActionResult(success=False, error="topic is required", outputs=outputs)
        metadata = params.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return ActionResult(
                success=False,
                error=f"metadata must be a JSON object of strings, got {describe_type(metadata)}",
                outputs=outputs,
            )
        try:
            await context.publish(
                topic,
                params.get("message"),
                {str(k): str(v) for k, v in metadata.items()} if metadata else None,
            )
        except (ServiceInvocationError, ConfigurationError) as exc:
            return ActionResult(success=False, error=str(exc), outputs=outputs)
        return ActionResult(success=True, outputs={"topic": topic, "published": True})


META = ActionMeta(
    type="notify",
    version="1.0.0",
    name="Notify",
    description="Publishes a message to a topic, through Dapr pub/sub or to the topic's "
    "configured URL.",
    category="Integration",
    icon="📣",
    execution_mode=ExecutionMode.SYNC,
    # Publishing twice delivers twice: a step interrupted mid-publish is not re-run blindly.
    idempotent=False,
    timeout_seconds=60,
    params=[
        ParamDefinition(
            name="topic",
            label="Topic",
            type=ParamType.STRING,
            required=True,
            description="The topic to publish to.",
            placeholder="orders-ready",
            validation=ValidationRules(min_length=1),
        ),
        ParamDefinition(
            name="message",
            label="Message",
            type=ParamType.JSON,
            required=True,
            description="The message, any JSON value; templates are rendered.",
            placeholder='{"order": "{{ params.order_id }}", "status": "ready"}',
        ),
        ParamDefinition(
            name="metadata",
            label="Metadata",
            type=ParamType.JSON,
            description="Publisher metadata, a JSON object of strings (Dapr: e.g. "
            "ttlInSeconds; HTTP: sent as X-Conveyor-Meta-* headers).",
            placeholder='{"ttlInSeconds": "3600"}',
        ),
    ],
    outputs=[
        OutputDefinition(name="topic", type="string", description="The topic published to."),
        OutputDefinition(
            name="published", type="boolean", description="Whether the message was accepted."
        ),
    ],
)


@register_action(META)
class NotifyAction:
    """The ``notify`` action."""

    meta = META
    executor_class = NotifyExecutor
