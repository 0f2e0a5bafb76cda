"""The CLI's client of a Conveyor server (`--server URL`): start, read and follow runs over HTTP.

Following a run reads its Server-Sent Events stream (`GET /runs/{id}/stream`) and applies each
timeline entry to the run's view, so the live table changes as the server commits, with no
polling. A dropped connection is resumed from the last entry seen (`Last-Event-ID`).

Every failure is a `RemoteError` whose message is written for the person at the terminal:
which URL could not be reached, that the key was refused, which run was not found.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx

    from conveyor.runs import RunEvent, RunSummary, RunView, StepView

API_KEY_ENV = "CONVEYOR_API_KEY"

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="A Conveyor server (http://host:port) to talk to instead of a local database.",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        envvar=API_KEY_ENV,
        help=f"With --server: the API key (default: ${API_KEY_ENV}).",
        show_default=False,
        show_envvar=False,
    ),
]

STREAM_READ_TIMEOUT = 60.0
"""Seconds without a byte before a stream counts as dead; the server comments every 15 s."""
RECONNECTS = 5
"""Times a dropped stream is resumed before giving up."""


class RemoteError(Exception):
    """A request to the server failed; the message says why, for a person."""

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []
        """`path: message` of each problem the server named."""


class Remote:
    """A client of one server, used as `async with Remote(url, key) as remote`."""

    def __init__(
        self, url: str, api_key: str | None, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise RemoteError(f"--server must be an http:// or https:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=30.0, transport=transport
        )

    async def __aenter__(self) -> Remote:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def start_run(
        self, pipeline: str, params: Mapping[str, Any], idempotency_key: str | None = None
    ) -> RunView:
        """Start an inline pipeline (YAML or JSON text) on the server; its new run."""
        from conveyor.runs import RunView

        body: dict[str, Any] = {"pipeline": pipeline, "params": dict(params)}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        response = await self._request("POST", "/runs", json=body)
        return RunView.model_validate_json(response.content)

    async def get_run(self, run_id: str) -> RunView:
        """The run as the server shows it."""
        from conveyor.runs import RunView

        response = await self._request("GET", f"/runs/{run_id}", run_id=run_id)
        return RunView.model_validate_json(response.content)

    async def list_runs(
        self, status: list[str], pipeline: str | None, limit: int, trigger: str | None = None
    ) -> list[RunSummary]:
        """Runs the key may see, newest first."""
        from conveyor.runs import RunSummary

        query: dict[str, Any] = {"limit": min(limit, 500)}
        if status:
            query["status"] = status
        if pipeline:
            query["pipeline"] = pipeline
        if trigger:
            query["trigger"] = trigger
        response = await self._request("GET", "/runs", params=query)
        return [RunSummary.model_validate(item) for item in response.json()["items"]]

    async def cancel_run(self, run_id: str, reason: str) -> RunView:
        """Cancel the run on the server; the run as it answers."""
        from conveyor.runs import RunView

        response = await self._request(
            "POST", f"/runs/{run_id}/cancel", run_id=run_id, json={"reason": reason}
        )
        return RunView.model_validate_json(response.content)

    async def retry_run(self, run_id: str) -> RunView:
        """Start a new run of a run that did not complete; the new run."""
        from conveyor.runs import RunView

        response = await self._request("POST", f"/runs/{run_id}/retry", run_id=run_id)
        return RunView.model_validate_json(response.content)

    async def step_logs(self, run_id: str, step_id: str | None) -> list[dict[str, Any]]:
        """The run's stored log lines (of one step, when given), oldest first."""
        path = f"/runs/{run_id}/logs" if step_id is None else f"/runs/{run_id}/steps/{step_id}/logs"
        response = await self._request("GET", path, run_id=run_id, params={"limit": 10_000})
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def get_json(self, path: str, **params: Any) -> Any:
        """The JSON body of a GET on `path`."""
        response = await self._request("GET", path, params=params or None)
        return response.json()

    async def send_json(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON body (None when empty) of a POST, PUT or DELETE on `path`."""
        response = await self._request(method, path, json=body)
        return response.json() if response.content else None

    async def follow(self, run_id: str) -> AsyncIterator[RunView]:
        """The run's view now, then again after each change, until the final one."""
        from conveyor.runs import RunEvent, RunView

        view = await self.get_run(run_id)
        yield view
        # The stream replays the run from its first entry, so the entries are applied to the
        # run as it was before any of them: a view that already had them would go back and
        # forth through old states during the replay.
        view = as_started(view)
        async for kind, data in self.stream(run_id):
            if kind == "end":
                yield RunView.model_validate_json(data)
                return
            view = apply_event(view, RunEvent.model_validate_json(data))
            yield view

    async def stream(self, run_id: str, after: int = 0) -> AsyncIterator[tuple[str, str]]:
        """(event, data) of the run's stream, resumed after a dropped connection."""
        import httpx

        last = after
        for attempt in range(RECONNECTS + 1):
            try:
                async for kind, data, seq in self._stream_once(run_id, last):
                    yield kind, data
                    if kind == "end":
                        return
                    last = seq if seq is not None else last
            except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
                reason = str(exc) or type(exc).__name__
            else:
                reason = "the stream ended early"
            if attempt == RECONNECTS:
                raise RemoteError(f"lost the stream of run {run_id} from {self.url}: {reason}")
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))

    async def _stream_once(
        self, run_id: str, after: int
    ) -> AsyncIterator[tuple[str, str, int | None]]:
        import httpx

        headers = {"Last-Event-ID": str(after), "Accept": "text/event-stream"}
        timeout = httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT)
        request = self._http.build_request(
            "GET", f"/runs/{run_id}/stream", headers=headers, timeout=timeout
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
        request = self._http.build_request(method, path, **kwargs)
        return await self._send(request, run_id=run_id)

    async def _send(
        self, request: httpx.Request, *, run_id: str | None, stream: bool = False
    ) -> httpx.Response:
        import httpx

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
        raise _refusal(response, self.url, run_id, has_key=self.api_key is not None)


def _refusal(
    response: httpx.Response, url: str, run_id: str | None, *, has_key: bool
) -> RemoteError:
    """The error for a 4xx or 5xx answer."""
    try:
        detail = response.json()["error"]
        message = str(detail["message"])
        fields = [f"{field['path']}: {field['message']}" for field in detail.get("fields", [])]
    except (json.JSONDecodeError, KeyError, TypeError):
        message, fields = response.text.strip()[:200], []
    status = response.status_code
    if status == 401:
        if not has_key:
            return RemoteError(
                f"the server at {url} needs an API key: pass --api-key or set {API_KEY_ENV}"
            )
        return RemoteError(f"the server refused the API key ({message}): {url}")
    if status == 404 and run_id is not None:
        return RemoteError(f"run {run_id} not found on {url}")
    return RemoteError(f"the server at {url} answered {status}: {message}", fields)


def as_started(view: RunView) -> RunView:
    """`view` as before the first entry of its timeline: pending, with nothing done."""
    from conveyor.actions import StepStatus
    from conveyor.engine.state import RunStatus

    fresh = {"status": StepStatus.PENDING, "attempt": 0, "progress": 0.0, "error": None}
    steps = [
        step.model_copy(
            update={
                **fresh,
                "message": None,
                "started_at": None,
                "finished_at": None,
                "duration_seconds": None,
                "items": None
                if step.items is None
                else [item.model_copy(update=fresh) for item in step.items],
            }
        )
        for step in view.steps
    ]
    return view.model_copy(
        update={
            "status": RunStatus.PENDING,
            "error": None,
            "progress": 0.0,
            "eta_seconds": None,
            "started_at": None,
            "finished_at": None,
            "steps": steps,
        }
    )


def apply_event(view: RunView, event: RunEvent) -> RunView:
    """`view` with one timeline entry applied: what the server's view would say after it."""
    from conveyor.engine.state import RunStatus

    if event.kind == "run" and event.status is not None:
        status = RunStatus(event.status)
        run_update: dict[str, Any] = {"status": status, "error": event.error}
        if status is RunStatus.RUNNING and view.started_at is None:
            run_update["started_at"] = event.at
        if status.is_terminal:
            run_update["finished_at"] = event.at
            run_update["eta_seconds"] = None
        view = view.model_copy(update=run_update)
        return view.model_copy(update={"progress": _run_progress(view)})
    if event.kind not in ("step", "progress") or event.step_id is None:
        return view
    steps = [
        _apply_to_step(step, event) if step.step_id == event.step_id else step
        for step in view.steps
    ]
    view = view.model_copy(update={"steps": steps})
    return view.model_copy(update={"progress": _run_progress(view)})


def _apply_to_step(step: StepView, event: RunEvent) -> StepView:
    from conveyor.actions import StepStatus

    if event.status is None:
        return step
    status = StepStatus(event.status)
    unit: dict[str, Any] = {
        "status": status,
        "attempt": event.attempt if event.attempt is not None else 0,
        # An entry carries the unit's whole state: no progress in it means none.
        "progress": 100.0 if status is StepStatus.COMPLETED else event.progress or 0.0,
        "error": event.error,
    }
    if event.index is not None:
        if step.items is None or not 0 <= event.index < len(step.items):
            return step
        items = list(step.items)
        items[event.index] = items[event.index].model_copy(update=unit)
        done = sum(100.0 if item.status.is_terminal else item.progress for item in items)
        return step.model_copy(update={"items": items, "progress": done / len(items)})
    unit["message"] = event.message
    if status is StepStatus.RUNNING and step.started_at is None:
        unit["started_at"] = event.at
    if status.is_terminal:
        unit["finished_at"] = event.at
        unit["duration_seconds"] = _seconds_between(step.started_at, event.at)
    return step.model_copy(update=unit)


def _run_progress(view: RunView) -> float:
    # As the engine counts it (`RunState.progress`): finished steps fully, others by their own.
    from conveyor.actions import StepStatus
    from conveyor.engine.state import RunStatus

    if view.status is RunStatus.COMPLETED:
        return 100.0
    if not view.steps:
        return 0.0
    done = (
        100.0 if step.status in (StepStatus.COMPLETED, StepStatus.SKIPPED) else step.progress
        for step in view.steps
    )
    return round(sum(done) / len(view.steps), 2)


def _seconds_between(start: datetime | None, end: datetime) -> float | None:
    return (end - start).total_seconds() if start is not None else None
