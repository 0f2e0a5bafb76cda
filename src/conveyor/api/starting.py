"""Starting a run over HTTP: what to run (a stored pipeline, an inline one, or one action).

Idempotency keys are kept per owner: the engine's keys are global, so the key a request gives
is stored as ``<owner>:<key>``. Two owners who happen to pick the same key each get their own
run, and neither can learn of the other's by trying keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from conveyor.actions import validated_params
from conveyor.api.catalog import Catalog, document_of
from conveyor.api.deps import Principal
from conveyor.api.errors import ApiError, FieldError, not_found
from conveyor.api.service import Service
from conveyor.client import action_pipeline
from conveyor.errors import UnknownActionError
from conveyor.pipeline.loading import spec_from_document
from conveyor.pipeline.spec import PipelineSpec
from conveyor.publishing import CallbackTopic, WebhookSpec
from conveyor.publishing.specs import MAX_TARGETS
from conveyor.runs import RunView

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
LabelValue = Annotated[str, StringConstraints(max_length=500)]


class RunStart(BaseModel):
    """What to run, with what.

    Exactly one of `pipeline_id` (a stored pipeline, with an optional `version`), `pipeline`
    (an inline definition) or `action` (one action, its params being the run's params).
    """

    model_config = ConfigDict(extra="forbid")

    pipeline_id: str | None = Field(
        default=None,
        max_length=200,
        description="A stored pipeline's id, or the name of one of the caller's pipelines.",
    )
    version: int | None = Field(
        default=None, ge=1, le=2**31, description="With `pipeline_id`: default latest."
    )
    pipeline: dict[str, Any] | str | None = Field(
        default=None, description="An inline pipeline: a JSON object, or YAML/JSON text."
    )
    action: str | None = Field(default=None, max_length=200, description="One action's type.")
    params: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description="Starting again with a key used before returns the first run "
        "(the `Idempotency-Key` header does the same).",
    )
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=50)
    callback_topics: list[CallbackTopic] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description="Pub/sub topics that receive the run's lifecycle as CloudEvents.",
    )
    webhooks: list[WebhookSpec] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description="URLs that receive the run's lifecycle as signed POST requests.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [
            name
            for name in ("pipeline_id", "pipeline", "action")
            if getattr(self, name) is not None
        ]
        if not given:
            raise ValueError(
                "say what to run: give one of pipeline_id (a stored pipeline), pipeline "
                "(an inline one) or action (one action)"
            )
        if len(given) > 1:
            raise ValueError(
                f"give only one of pipeline_id, pipeline or action, not {' and '.join(given)}"
            )
        if self.version is not None and self.pipeline_id is None:
            raise ValueError("version goes with pipeline_id")
        return self


def scoped_key(owner: str | None, key: str) -> str:
    """The engine's idempotency key for `owner`'s `key`: ``{len(owner)}:{owner}:{key}``.

    Owner names and keys may both contain ``:``, so the owner's length comes first: without it
    owner ``alice`` with key ``inv:k1`` and owner ``alice:inv`` with key ``k1`` would meet.
    """
    return f"{_owner_prefix(owner)}{key}"


def _owner_prefix(owner: str | None) -> str:
    name = owner or ""
    return f"{len(name)}:{name}:"


def public_view(view: RunView) -> RunView:
    """`view` with its idempotency key as the caller gave it (the owner prefix taken off)."""
    key = view.idempotency_key
    prefix = _owner_prefix(view.owner)
    if key is None or not key.startswith(prefix):
        return view
    return view.model_copy(update={"idempotency_key": key.removeprefix(prefix)})


def resolve_start(
    service: Service, principal: Principal, body: RunStart
) -> tuple[PipelineSpec, str, dict[str, Any]]:
    """The pipeline to run, the run's kind, and labels recording where it came from.

    Raises:
        ApiError: 404 for an unknown or invisible stored pipeline (or version); 422 for an
            unknown action.
        ParamValidationError: params that do not fit the action.
        PipelineLoadError, PipelineValidationError: an inline pipeline that is not valid.
    """
    if body.action is not None:
        try:
            meta = service.registry.get(body.action).meta
        except UnknownActionError as exc:
            # A name in the request, not a resource in the path: the request is what's wrong.
            raise ApiError(
                422,
                "validation_error",
                f"action: {exc}",
                fields=[FieldError(path="action", message=str(exc))],
            ) from exc
        # The one-step pipeline reads every value through a template, which validation
        # cannot see through: check the values against the action now, by name.
        validated_params(meta, body.params)
        return action_pipeline(body.action, body.params), "action", {}
    if body.pipeline is not None:
        return spec_from_document(document_of(body.pipeline)), "pipeline", {}
    assert body.pipeline_id is not None
    catalog = Catalog(service.store)
    ident = catalog.visible_id(body.pipeline_id, principal)
    if ident is None:
        raise not_found("pipeline", body.pipeline_id)
    stored = catalog.get(ident, body.version)
    if stored is None or stored.document is None:
        raise not_found("pipeline version", f"{body.pipeline_id}@{body.version}")
    origin = {"conveyor.pipeline_id": stored.id, "conveyor.pipeline_version": str(stored.version)}
    return spec_from_document(stored.document), "pipeline", origin
