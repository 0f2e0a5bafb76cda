"""Quota Check - reads a team's quota from the budapp service.

Written as BudPipeline's guide writes actions; only the import of the SDK names differs.
"""

from __future__ import annotations

import logging

import httpx

from conveyor.actions import (
    ActionContext,
    ActionExample,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ConditionalVisibility,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    RetryPolicy,
    register_action,
)

logger = logging.getLogger(__name__)


class QuotaCheckExecutor(BaseActionExecutor):
    """Executor for the quota check."""

    async def execute(self, context: ActionContext) -> ActionResult:
        team = context.params.get("team", "")
        try:
            response = await context.invoke_service(
                app_id="budapp",
                method_path=f"quotas/{team}",
                http_method="GET",
                params={"provider": context.params.get("provider") or "any"},
                timeout_seconds=10,
            )
        except httpx.HTTPStatusError as e:
            # Consistent outputs on every path, as the guide asks.
            status = e.response.status_code
            logger.warning("quota_check_failed team=%s status=%s", team, status)
            if status == 404:
                return ActionResult(
                    success=True,
                    outputs={"team": team, "remaining": 0, "status": "unknown", "http_status": 404},
                )
            return ActionResult(
                success=False,
                error=f"quota service answered {status}",
                outputs={"team": team, "remaining": 0, "status": "error", "http_status": status},
            )
        return ActionResult(
            success=True,
            outputs={
                "team": team,
                "remaining": response.get("remaining", 0),
                "status": "ok",
                "http_status": 200,
            },
        )


META = ActionMeta(
    type="quota_check",
    name="Quota Check",
    description="Reads how much of its quota a team has left",
    category="Integration",
    icon="gauge",
    color="#10b981",
    execution_mode=ExecutionMode.SYNC,
    timeout_seconds=30,
    required_services=["budapp"],
    required_permissions=["quota:read"],
    docs_url="https://docs.example.org/actions/quota_check",
    retry_policy=RetryPolicy(max_attempts=2, backoff_multiplier=1.5),
    params=[
        ParamDefinition(
            name="team",
            label="Team",
            type=ParamType.STRING,
            required=True,
            description="The team whose quota to read",
        ),
        ParamDefinition(
            name="provider",
            label="Provider",
            type=ParamType.PROVIDER_REF,
            required=False,
            description="Only this provider's quota",
            show_when=ConditionalVisibility(param="team", not_equals=""),
        ),
    ],
    outputs=[
        OutputDefinition(name="team", type="string", description="The team"),
        OutputDefinition(name="remaining", type="number", description="Quota left"),
        OutputDefinition(name="status", type="string", description="ok, unknown or error"),
        OutputDefinition(name="http_status", type="number", description="The service's status"),
    ],
    examples=[
        ActionExample(
            title="Check a team",
            params={"team": "research"},
            description="Reads the research team's remaining quota",
        ),
    ],
)


@register_action(META)
class QuotaCheckAction:
    """Quota check action class for entry point registration."""

    executor_class = QuotaCheckExecutor
