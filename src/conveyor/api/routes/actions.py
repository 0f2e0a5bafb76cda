"""The action catalog: what the engine can run, and a check of param values against it.

`ActionMeta` is the single source of an action's description; these routes serve it as
declared, so a form built from `GET /actions/{type}` and the server's own validation agree.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from conveyor.actions import ActionMeta, validate_params
from conveyor.api.deps import Reader, ServiceDep
from conveyor.api.errors import AUTHED, FieldError, responses

router = APIRouter(prefix="/actions", tags=["actions"])


class ActionCategory(BaseModel):
    """The actions of one category, sorted by type."""

    category: str
    actions: list[ActionMeta]


class FailedPluginInfo(BaseModel):
    """An installed plugin that could not become an action."""

    package: str
    version: str
    entry_point: str
    phase: str
    error: str


class ActionCatalog(BaseModel):
    """Every action, grouped by category (sorted), and the plugins that failed to load."""

    categories: list[ActionCategory]
    total: int = Field(description="How many actions are listed.")
    failed: list[FailedPluginInfo] = Field(default_factory=list)


class ParamValues(BaseModel):
    """Param values to check against an action's declaration."""

    params: dict[str, Any] = Field(default_factory=dict)


class ParamCheck(BaseModel):
    """The result of checking param values: every problem, each named by its param."""

    valid: bool
    params: dict[str, Any] = Field(
        description="The values as the action would get them: coerced, defaults filled in."
    )
    errors: list[FieldError] = Field(description="One entry a problem, at `params.<name>`.")


@router.get(
    "",
    response_model=ActionCatalog,
    summary="List the actions by category",
    responses=responses(*AUTHED),
)
async def list_actions(
    service: ServiceDep,
    principal: Reader,
    category: Annotated[str | None, Query(max_length=200)] = None,
) -> ActionCatalog:
    """Every installed action, grouped by category; `category` keeps one group."""
    groups = [
        ActionCategory(category=name, actions=[d.meta for d in definitions])
        for name, definitions in service.registry.by_category().items()
        if category is None or name == category
    ]
    failed = [FailedPluginInfo(**f.to_dict()) for f in service.registry.failures]
    return ActionCatalog(
        categories=groups,
        total=sum(len(group.actions) for group in groups),
        failed=failed,
    )


@router.get(
    "/{action_type}",
    response_model=ActionMeta,
    summary="Show one action",
    responses=responses(*AUTHED, 404),
)
async def get_action(action_type: str, service: ServiceDep, principal: Reader) -> ActionMeta:
    """Everything the action declares: params with their rules, outputs, execution mode."""
    return service.registry.get(action_type).meta


@router.post(
    "/{action_type}/validate",
    response_model=ParamCheck,
    summary="Check param values",
    responses=responses(*AUTHED, 400, 404, 415),
)
async def validate_action_params(
    action_type: str, body: ParamValues, service: ServiceDep, principal: Reader
) -> ParamCheck:
    """Check `params` against the action's declaration, reporting every problem at once.

    Answers 200 whether the values are valid or not: the check itself succeeded.
    """
    meta = service.registry.get(action_type).meta
    clean, problems = validate_params(meta, body.params)
    errors = [FieldError(path=f"params.{p.name}", message=p.message) for p in problems]
    return ParamCheck(valid=not errors, params=clean, errors=errors)
