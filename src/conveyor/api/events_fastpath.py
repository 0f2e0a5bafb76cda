"""`POST /events` answered in front of the router, as plain ASGI.

The events endpoint is the one route whose rate is set by other systems: every service a run
waits on posts its progress and completion there, and a platform sends thousands a second.
Through FastAPI each of those requests paid for route matching over every route, dependency
solving and response-model validation, which together cost as much as storing and routing
the event. Here the request is read, authenticated, accepted and answered by the same
functions the FastAPI route uses (`events_principal`, `accept_events`), so both answer
alike; that route stays as the endpoint's declaration in the OpenAPI document, and serves
when the app is made with `fast_events=False` (the tests compare the two).

It sits inside the body-size limit and the server-error handler, so an oversized body is
refused, and a defect answered 500, exactly as on every other route.
"""

from __future__ import annotations

from fastapi.security.utils import get_authorization_scheme_param
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.deps import unknown_query
from conveyor.api.errors import answer_to
from conveyor.api.routes.events import DAPR_TOKEN_HEADER, accept_events, events_principal
from conveyor.api.service import Service
from conveyor.events import EventReceipt

__all__ = ["PATH", "EventsFastPath"]

PATH = "/events"

_RECEIPTS = TypeAdapter(list[EventReceipt])


class EventsFastPath:
    """ASGI middleware answering `POST /events` itself and passing on everything else."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            answer = await self._answer(scope, receive)
        except Exception as exc:
            known = answer_to(exc)
            if known is None:
                raise  # A defect: the server-error handler logs it and answers 500.
            answer = known
        await answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        # Read through Starlette's Request, as the route reads it: the same headers, query
        # and body, so both answer alike.
        request = Request(scope, receive)
        if request.query_params:
            raise unknown_query(request.query_params)
        headers = request.headers
        # Parsed as the route's HTTPBearer parses it.
        scheme, token = get_authorization_scheme_param(headers.get("authorization"))
        bearer = token if scheme.lower() == "bearer" and token else None
        events_principal(self.service, bearer, headers.get(DAPR_TOKEN_HEADER))
        receipts, batch = await accept_events(self.service, await request.body(), headers)
        payload = _RECEIPTS.dump_json(receipts) if batch else receipts[0].model_dump_json()
        return Response(payload, status_code=202, media_type="application/json")
