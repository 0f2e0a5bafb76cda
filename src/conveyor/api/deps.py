"""What routes depend on: the service, and the principal a request acts as.

Auth: every route but `/health`, `/ready` and `/metrics` takes an API key as
``Authorization: Bearer cvk_<id>_<secret>`` (made with `conveyor keys create`). A key belongs
to an owner and has one scope, each allowing what the weaker ones do:

- ``read``: read its owner's pipelines and runs, and the action catalog;
- ``write``: also create, change and delete them, start, cancel and retry runs;
- ``admin``: everything, across every owner.

No key, an unknown one or a revoked one answers 401 with ``WWW-Authenticate: Bearer``; a scope
too weak answers 403. A resource of another owner answers 404, exactly as one that does not
exist, so ids cannot be probed. With auth disabled (`conveyor serve --insecure`, loopback only)
every request is an admin of owner ``local``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api.errors import ApiError, FieldError, not_found
from conveyor.api.keys import SCOPES, Scope, authenticate
from conveyor.api.service import Service
from conveyor.runs import RunView

LOCAL_OWNER = "local"
"""The owner of everything made while auth is disabled, and of `--pipelines` loaded at start."""

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `conveyor keys create`: `Authorization: Bearer cvk_...`.",
)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    owner: str
    scope: Scope
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether it sees and may change everything, across owners."""
        return self.scope == "admin"

    def allows(self, scope: Scope) -> bool:
        """Whether its scope includes `scope`."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def can_see(self, owner: str | None) -> bool:
        """Whether a resource of `owner` is visible to it."""
        return self.is_admin or owner == self.owner


async def get_service(request: Request) -> Service:
    """The service the app serves.

    Async although it does not await: FastAPI runs a plain function dependency in a thread
    pool, a hop on every request that showed in profiles of the events endpoint.
    """
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def visible_run(service: Service, principal: Principal, run_id: str) -> RunView:
    """The run, when the principal may see it; 404 otherwise (as for an unknown id)."""
    view = await service.engine.get(run_id)
    if not principal.can_see(view.owner):
        raise not_found("run", run_id)
    return view


def owner_filter(principal: Principal) -> str | None:
    """The owner to filter listings by: None (everything) for an admin."""
    return None if principal.is_admin else principal.owner


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the request and demands `scope`.

    Raises (as answers):
        401: no key, or an unknown or revoked one.
        403: the key's scope is weaker than `scope`.
    """

    async def dependency(
        service: ServiceDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if not service.auth.enabled:
            return Principal(owner=LOCAL_OWNER, scope="admin")
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("an API key is required (Authorization: Bearer cvk_...)")
        key = authenticate(service.store, credentials.credentials)
        if key is None:
            raise _unauthorized("the API key is unknown or revoked")
        principal = Principal(owner=key.owner, scope=key.scope, key_id=key.id)
        if not principal.allows(scope):
            raise ApiError(403, "forbidden", f"this needs a key with the {scope!r} scope")
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


async def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (422, each named).

    Ignoring them would turn a typo into a wrong answer: `GET /runs?stauts=failed` would list
    every run instead of failing.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    declared = _query_names(dependant)
    unknown = {name for name in request.query_params if name not in declared}
    if unknown:
        raise unknown_query(unknown)


def unknown_query(names: Iterable[str]) -> ApiError:
    """The 422 for query parameters a route does not declare, each named."""
    unknown = sorted(set(names))
    return ApiError(
        422,
        "validation_error",
        f"unknown query parameter(s): {', '.join(unknown)}",
        fields=[FieldError(path=f"query.{name}", message="unknown parameter") for name in unknown],
    )


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


Reader = Annotated[Principal, Depends(require("read"))]
"""A route parameter: the principal of a request with at least `read` scope."""
Writer = Annotated[Principal, Depends(require("write"))]
"""A route parameter: the principal of a request with at least `write` scope."""
Admin = Annotated[Principal, Depends(require("admin"))]
"""A route parameter: the principal of a request with `admin` scope."""
