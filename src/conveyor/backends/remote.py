"""A backend that is a Conveyor server: the REST API for requests, its SSE stream for waiting.

    async with Client.remote("http://127.0.0.1:8080", api_key) as client:
        run_id = await client.start("examples/hello.yaml", {"who": "Ada"})
        run = await client.wait(run_id, timeout=30)

Runs belong to the API key's owner. The server's error answers come back as the errors the
embedded engine raises for the same mistake (`RunNotFoundError`, `ParamValidationError`,
`PipelineValidationError`, ...), so code written against one backend handles the other; what
only a server can answer (unreachable, key refused, a 5xx) is a `RemoteError`.

`wait` reads the run's stream (`GET /runs/{id}/stream`) until its `end` message, resuming a
dropped connection after the last entry seen (`Last-Event-ID`), so nothing polls.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from conveyor.errors import (
    EventError,
    ParamProblem,
    ParamValidationError,
    PipelineValidationError,
    RemoteError,
    RunNotFoundError,
    RunStateError,
    TemplateError,
    UnknownActionError,
)
from conveyor.events import Event, EventReceipt
from conveyor.pipeline.spec import PipelineSpec
from conveyor.runs import RunSummary, RunTrigger, RunView

PAGE_LIMIT = 500
"""The most runs the server lists in one answer; longer lists are read a page at a time."""
STREAM_READ_TIMEOUT = 60.0
"""Seconds without a byte before a stream counts as dead; the server comments every 15 s."""
RECONNECTS = 5
"""Times a dropped stream is resumed before `wait` gives up."""

_UNKNOWN_ACTION = re.compile(r"unknown action type '([^']*)'(?: \(known: ([^)]*)\))?")


class RemoteBackend:
    """A Conveyor server at `url`, reached with `api_key` (None for `--insecure` servers)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url: must be an http:// or https:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    async def start(self) -> None:
        """Check that the server answers and takes the key (one `GET /actions`)."""
        try:
            await self._request("GET", "/actions")
        except BaseException:
            await self._http.aclose()  # `stop` is not called when entering failed.
            raise

    async def stop(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # ------------------------------------------------------------ runs

    async def start_run(
        self,
        pipeline: PipelineSpec,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        owner: str | None = None,
        labels: Mapping[str, str] | None = None,
        kind: str = "pipeline",
        trigger: RunTrigger | None = None,
    ) -> str:
        """Start a run on the server (`POST /runs`); its id.

        A one-action run (`kind="action"`) is sent as the action, so the server checks its
        params against the action by name.

        Raises:
            ValueError: `owner` is given: a server's runs belong to the key's owner; or a
                `trigger` other than manual: the server records its own triggers.
        """
        if owner is not None:
            raise ValueError("owner: runs on a server belong to the API key's owner")
        if trigger is not None and trigger.kind != "manual":
            raise ValueError("trigger: a server records what started its runs itself")
        body: dict[str, Any] = {"params": dict(params or {})}
        if kind == "action" and len(pipeline.steps) == 1:
            body["action"] = pipeline.steps[0].action
        else:
            body["pipeline"] = pipeline.model_dump(mode="json", exclude_none=True)
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if labels:
            body["labels"] = dict(labels)
        answer = await self._request("POST", "/runs", json=body)
        return str(answer.json()["run_id"])

    async def get(self, run_id: str) -> RunView:
        """The run with its steps (`GET /runs/{id}`)."""
        answer = await self._request("GET", f"/runs/{run_id}", run_id=run_id)
        return RunView.model_validate_json(answer.content)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunView:
        """Follow the run's stream until it ends (raises TimeoutError past `timeout`)."""
        async with asyncio.timeout(timeout):
            return await self._follow_to_end(run_id)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> RunView:
        """Cancel the run (`POST /runs/{id}/cancel`)."""
        answer = await self._request(
            "POST", f"/runs/{run_id}/cancel", json={"reason": reason}, run_id=run_id
        )
        return RunView.model_validate_json(answer.content)

    async def list_runs(
        self,
        *,
        status: list[str] | None = None,
        pipeline: str | None = None,
        owner: str | None = None,
        kind: str | None = None,
        trigger: str | None = None,
        trigger_id: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs the key may see, newest first (`GET /runs`; `owner` counts for admins only)."""
        query: dict[str, Any] = {
            name: value
            for name, value in (
                ("status", status),
                ("pipeline", pipeline),
                ("owner", owner),
                ("kind", kind),
                ("trigger", trigger),
                ("trigger_id", trigger_id),
                ("created_after", _iso(created_after)),
                ("created_before", _iso(created_before)),
            )
            if value is not None
        }
        found: list[RunSummary] = []
        while len(found) < limit:
            page = min(limit - len(found), PAGE_LIMIT)
            answer = await self._request(
                "GET", "/runs", params={**query, "limit": page, "offset": offset + len(found)}
            )
            items = [RunSummary.model_validate(item) for item in answer.json()["items"]]
            found.extend(items)
            if len(items) < page:
                break
        return found

    # ------------------------------------------------------------ events and actions

    async def send_event(self, event: Event | Mapping[str, Any]) -> EventReceipt:
        """Send an event to `POST /events`; the receipt says how it was routed.

        A mapping is sent as the body it is (plain JSON or a CloudEvent); an `Event` as a
        CloudEvent whose `workflow_id` carries its correlation id, the first path a server
        reads one from by default.
        """
        body = _cloudevent(event) if isinstance(event, Event) else dict(event)
        answer = await self._request("POST", "/events", json=body)
        return EventReceipt.model_validate_json(answer.content)

    async def has_action(self, action_type: str) -> bool:
        """Whether the server's catalog has an action of that type."""
        try:
            await self._request("GET", f"/actions/{action_type}")
        except RemoteError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    # ------------------------------------------------------------ HTTP

    async def _follow_to_end(self, run_id: str) -> RunView:
        last = 0
        for attempt in range(RECONNECTS + 1):
            try:
                async for kind, data, seq in self._stream_once(run_id, last):
                    if kind == "end":
                        return RunView.model_validate_json(data)
                    last = seq if seq is not None else last
            except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
                reason = str(exc) or type(exc).__name__
            else:
                reason = "the stream ended before the run did"
            if attempt == RECONNECTS:
                raise RemoteError(f"lost the stream of run {run_id} from {self.url}: {reason}")
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stream_once(
        self, run_id: str, after: int
    ) -> AsyncIterator[tuple[str, str, int | None]]:
        headers = {"Last-Event-ID": str(after), "Accept": "text/event-stream"}
        request = self._http.build_request(
            "GET",
            f"/runs/{run_id}/stream",
            headers=headers,
            timeout=httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT),
        )
        response = await self._send(request, run_id=run_id, stream=True)
        try:
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line:
                    if not line.startswith(":"):  # A comment: the server's keep-alive.
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    seq = fields.get("id")
                    yield (
                        fields.get("event", "message"),
                        fields["data"],
                        int(seq) if seq and seq.isdigit() else None,
                    )
                fields = {}
        finally:
            await response.aclose()

    async def _request(
        self, method: str, path: str, *, run_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self._send(self._http.build_request(method, path, **kwargs), run_id=run_id)

    async def _send(
        self, request: httpx.Request, *, run_id: str | None, stream: bool = False
    ) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.ConnectError as exc:
            raise RemoteError(f"cannot connect to the server at {self.url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise RemoteError(f"the server at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"the request to {self.url} failed: {exc}") from exc
        if response.is_success:
            return response
        if stream:
            await response.aread()
            await response.aclose()
        raise error_of(response, self.url, run_id, has_key=self.api_key is not None)


def error_of(response: httpx.Response, url: str, run_id: str | None, *, has_key: bool) -> Exception:
    """The error the embedded engine raises for the mistake a server's answer names."""
    from conveyor.pipeline.validation import ValidationIssue

    status = response.status_code
    try:
        detail = response.json()["error"]
        type_, message = str(detail["type"]), str(detail["message"])
        fields = [(str(f["path"]), str(f["message"])) for f in detail.get("fields", [])]
    except (ValueError, KeyError, TypeError):
        type_, message, fields = "error", response.text.strip()[:200], []
    if status == 401:
        said = "needs an API key" if not has_key else f"refused the API key ({message})"
        return RemoteError(f"the server at {url} {said}", status_code=status, type_=type_)
    if status == 404 and run_id is not None and type_ == "not_found":
        return RunNotFoundError(run_id)
    if status == 409 and run_id is not None:
        return RunStateError(run_id, message)
    if status == 422:
        if type_ == "invalid_pipeline":
            return PipelineValidationError([ValidationIssue(path, text) for path, text in fields])
        if type_ == "invalid_params":
            problems = [ParamProblem(path.removeprefix("params."), text) for path, text in fields]
            return ParamValidationError(problems)
        if type_ == "invalid_event":
            return EventError(message)
        if type_ == "template_error":
            return TemplateError(message)
        for path, text in fields:
            unknown = _UNKNOWN_ACTION.fullmatch(text)
            if path == "action" and unknown is not None:
                known = unknown.group(2).split(", ") if unknown.group(2) else []
                return UnknownActionError(unknown.group(1), known)
    return RemoteError(
        f"the server at {url} answered {status}: {message}",
        status_code=status,
        type_=type_,
        fields=[f"{path}: {text}" if path else text for path, text in fields],
    )


def _cloudevent(event: Event) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "type": event.type,
        "source": event.source or "conveyor-client",
        "data": event.data,
    }
    if event.correlation_id is not None:
        body["workflow_id"] = event.correlation_id
    return body


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
