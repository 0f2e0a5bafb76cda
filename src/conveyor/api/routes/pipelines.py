"""The pipeline catalog over HTTP: create, list, read, update (a new version), delete, validate.

A pipeline is addressed by its id or by its name (the caller's own first, then a shared
one). Another owner's pipeline answers 404, as one that does not exist, unless it is shared:
every owner reads and runs a shared pipeline (the examples `conveyor serve --pipelines`
loads are), and changing or deleting it answers 403 to all but its owner and admins.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from conveyor.api.catalog import Catalog, NameTakenError, StoredPipeline, document_of
from conveyor.api.deps import Principal, Reader, ServiceDep, Writer, owner_filter
from conveyor.api.errors import AUTHED, ApiError, FieldError, not_found, responses
from conveyor.api.models import Limit, Offset, Page
from conveyor.api.service import Service
from conveyor.errors import PipelineLoadError
from conveyor.pipeline.loading import spec_from_document
from conveyor.pipeline.spec import PipelineSpec
from conveyor.pipeline.validation import ValidationIssue, ValidationReport, validate_pipeline

router = APIRouter(prefix="/pipelines", tags=["pipelines"])

PipelineRef = Annotated[
    str,
    Path(
        max_length=200,
        description="The pipeline's id, or the name of one of the caller's pipelines.",
    ),
]


class PipelineDocument(BaseModel):
    """A pipeline document, as a JSON object or as its YAML or JSON text."""

    document: dict[str, Any] | str = Field(
        description="The pipeline: a JSON object, or YAML/JSON text (YAML aliases refused)."
    )
    shared: bool | None = Field(
        default=None,
        description="Let every owner read and run it (only its owner changes it). "
        "Default: not shared when created, unchanged when updated.",
    )


class PipelineSummary(BaseModel):
    """A stored pipeline, without its document."""

    id: str
    owner: str
    name: str
    description: str | None = None
    latest_version: int
    shared: bool = Field(description="Every owner may read and run it; only its owner changes it.")
    created_at: datetime
    updated_at: datetime


class PipelineDetail(PipelineSummary):
    """One version of a stored pipeline, with its document."""

    version: int
    document: dict[str, Any]
    warnings: list[FieldError] = Field(
        default_factory=list, description="Validation warnings (on create and update)."
    )


class VersionInfo(BaseModel):
    """One version of a pipeline."""

    version: int
    created_at: datetime


class ValidationResult(BaseModel):
    """Every problem of a pipeline, errors apart from warnings, each with its path."""

    valid: bool
    errors: list[FieldError]
    warnings: list[FieldError]


def checked_spec(
    service: Service, source: dict[str, Any] | str
) -> tuple[PipelineSpec, list[FieldError]]:
    """The spec of a document that validates, and its warnings.

    Parsing and validating a large document takes a while: routes call this in a thread
    (`asyncio.to_thread`), so other requests go on meanwhile.

    Raises:
        PipelineLoadError: text that does not parse.
        PipelineValidationError: the pipeline has errors (each with its path).
    """
    document = document_of(source)
    report = validate_pipeline(document, service.registry)
    report.raise_for_errors()
    return spec_from_document(document), _fields(report.warnings)


def resolve(service: Service, principal: Principal, ref: str) -> str:
    """The id of the pipeline `ref` names (an id, or one of the caller's names).

    Raises:
        ApiError: 404, when there is none the caller may see.
    """
    found = Catalog(service.store).visible_id(ref, principal)
    if found is None:
        raise not_found("pipeline", ref)
    return found


def resolve_own(service: Service, principal: Principal, ref: str) -> str:
    """Like `resolve`, for a change: a pipeline shared by another owner is read-only.

    Raises:
        ApiError: 404, when there is none the caller may see; 403 for another's shared one.
    """
    ident = resolve(service, principal, ref)
    stored = Catalog(service.store).get(ident)
    if stored is not None and not principal.can_see(stored.owner):
        raise ApiError(
            403,
            "forbidden",
            f"pipeline {stored.name!r} is shared by {stored.owner!r} to read and run; only "
            "its owner may change or delete it (store a copy under another name to change it)",
        )
    return ident


@router.post(
    "",
    status_code=201,
    response_model=PipelineDetail,
    summary="Store a pipeline",
    responses=responses(*AUTHED, 400, 409, 415),
)
async def create_pipeline(
    body: PipelineDocument, service: ServiceDep, principal: Writer
) -> PipelineDetail:
    """Validate and store a pipeline as version 1; its name must be new for the owner."""
    spec, warnings = await asyncio.to_thread(checked_spec, service, body.document)
    try:
        stored = Catalog(service.store).create(principal.owner, spec, shared=bool(body.shared))
    except NameTakenError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return _detail(stored, warnings)


@router.get(
    "",
    response_model=Page[PipelineSummary],
    summary="List pipelines",
    responses=responses(*AUTHED),
)
async def list_pipelines(
    service: ServiceDep,
    principal: Reader,
    limit: Limit = 50,
    offset: Offset = 0,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[PipelineSummary]:
    """The caller's pipelines and the shared ones (every owner's for an admin), by name."""
    found, total = Catalog(service.store).list(
        owner=owner_filter(principal), name=name, limit=limit, offset=offset
    )
    items = [_summary(stored) for stored in found]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/validate",
    response_model=ValidationResult,
    summary="Validate a pipeline without storing it",
    responses=responses(*AUTHED, 400, 415),
)
async def validate(
    body: PipelineDocument, service: ServiceDep, principal: Reader
) -> ValidationResult:
    """Every problem of the pipeline at once; answers 200 whether it is valid or not."""
    report = await asyncio.to_thread(_report, service, body.document)
    return ValidationResult(
        valid=report.ok, errors=_fields(report.errors), warnings=_fields(report.warnings)
    )


@router.get(
    "/{pipeline_id}",
    response_model=PipelineDetail,
    summary="Show a pipeline",
    responses=responses(*AUTHED, 404),
)
async def get_pipeline(
    pipeline_id: PipelineRef,
    service: ServiceDep,
    principal: Reader,
    version: Annotated[int | None, Query(ge=1, le=2**31, description="Default: latest.")] = None,
) -> PipelineDetail:
    """One version (the latest by default) of a pipeline, with its document."""
    stored = Catalog(service.store).get(resolve(service, principal, pipeline_id), version)
    if stored is None:
        raise not_found("pipeline version", f"{pipeline_id}@{version}")
    return _detail(stored)


@router.get(
    "/{pipeline_id}/versions",
    response_model=Page[VersionInfo],
    summary="List a pipeline's versions",
    responses=responses(*AUTHED, 404),
)
async def list_versions(
    pipeline_id: PipelineRef,
    service: ServiceDep,
    principal: Reader,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[VersionInfo]:
    """Every version of a pipeline, newest first."""
    versions = Catalog(service.store).versions(resolve(service, principal, pipeline_id))
    items = [VersionInfo(version=v, created_at=at) for v, at in versions]
    return Page(items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset)


@router.put(
    "/{pipeline_id}",
    response_model=PipelineDetail,
    summary="Update a pipeline (adds a version)",
    responses=responses(*AUTHED, 400, 404, 409, 415),
)
async def update_pipeline(
    pipeline_id: PipelineRef, body: PipelineDocument, service: ServiceDep, principal: Writer
) -> PipelineDetail:
    """Store the document as the pipeline's next version; runs keep the version they ran."""
    ident = resolve_own(service, principal, pipeline_id)
    spec, warnings = await asyncio.to_thread(checked_spec, service, body.document)
    catalog = Catalog(service.store)
    try:
        stored = catalog.update(ident, spec)
    except NameTakenError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    if stored is None:
        raise not_found("pipeline", pipeline_id)
    if body.shared is not None and body.shared != stored.shared:
        catalog.set_shared(ident, body.shared)
        stored = catalog.get(ident) or stored
    return _detail(stored, warnings)


@router.delete(
    "/{pipeline_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a pipeline",
    responses=responses(*AUTHED, 404),
)
async def delete_pipeline(
    pipeline_id: PipelineRef, service: ServiceDep, principal: Writer
) -> Response:
    """Delete a pipeline and all its versions; its runs are kept, with their snapshots."""
    if not Catalog(service.store).delete(resolve_own(service, principal, pipeline_id)):
        raise not_found("pipeline", pipeline_id)
    return Response(status_code=204)


def _report(service: Service, source: dict[str, Any] | str) -> ValidationReport:
    try:
        return validate_pipeline(document_of(source), service.registry)
    except PipelineLoadError as exc:
        # Text that does not parse is this pipeline's problem, reported like any other.
        return ValidationReport(errors=[ValidationIssue("", str(exc))])


def _fields(issues: list[Any]) -> list[FieldError]:
    return [FieldError(path=issue.path, message=issue.message) for issue in issues]


def _summary(stored: StoredPipeline) -> PipelineSummary:
    return PipelineSummary(
        id=stored.id,
        owner=stored.owner,
        name=stored.name,
        description=stored.description,
        latest_version=stored.latest_version,
        shared=stored.shared,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def _detail(stored: StoredPipeline, warnings: list[FieldError] | None = None) -> PipelineDetail:
    assert stored.version is not None
    assert stored.document is not None
    return PipelineDetail(
        **_summary(stored).model_dump(),
        version=stored.version,
        document=stored.document,
        warnings=warnings or [],
    )
