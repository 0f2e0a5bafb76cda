"""NOMAD's synchronous functions: `start_action`, `get_action_status`, `get_action_result`,
`stop_action`.

Plain functions, as NOMAD's are, for code that is not async (a schema's ``normalize``)::

    from conveyor.backends.temporal.nomad.utils import get_action_status, start_action

    workflow_id = start_action(
        action_name="nomad_example.actions.myaction:my_action", data=ExampleWorkflowInput(...)
    )
    print(get_action_status(workflow_id).name)  # RUNNING, COMPLETED, ...

They use the backend the settings name (``CONVEYOR_BACKEND``, ``CONVEYOR_TEMPORAL_ADDRESS``,
TLS...; or `settings=`), with the installed actions. The client is made at the first call and
kept for the process, on an event loop of its own in a background thread: so the functions
work the same from plain code and from inside a running event loop (which waits for them, as
for any blocking call; async code can use `conveyor.Client`'s methods of the same names).
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from conveyor.client import ActionStatus, Client
from conveyor.config import Settings

__all__ = [
    "ActionStatus",
    "close",
    "get_action_result",
    "get_action_status",
    "start_action",
    "stop_action",
]

T = TypeVar("T")


def start_action(
    action_name: str,
    data: Mapping[str, Any] | Any,
    *,
    owner: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Start action `action_name` (its type, or its entry point's id) with `data`; return the
    id to follow it by.

    `data` is the workflow's input: a Pydantic model (a `BaseWorkflowInput`, say), a dataclass
    or a mapping. The run's owner is `owner`, else the input's `user_id` when it has one.

    Raises:
        UnknownActionError: no action of that name is installed.
        ParamValidationError: `data` is wrong, each field named; nothing was started.
        TemporalConnectionError: the cluster cannot be reached (one line saying why).
    """
    if owner is None:
        user = getattr(data, "user_id", None)
        if user is None and isinstance(data, Mapping):
            user = data.get("user_id")
        owner = user if isinstance(user, str) else None
    return _call(settings, lambda client: client.start_action(action_name, data, owner=owner))


def get_action_status(workflow_id: str, *, settings: Settings | None = None) -> ActionStatus:
    """RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT, or UNKNOWN for an id the
    backend does not know; `.name` is the name, as NOMAD's status has."""
    return _call(settings, lambda client: client.get_action_status(workflow_id))


def get_action_result(workflow_id: str, *, settings: Settings | None = None) -> Any:
    """The action's result (its outputs) once it has ended; None while it runs.

    Raises:
        RunNotFoundError: no such id.
    """
    return _call(settings, lambda client: client.get_action_result(workflow_id))


def stop_action(workflow_id: str, *, settings: Settings | None = None) -> ActionStatus:
    """Cancel the action; its status after (CANCELED), or UNKNOWN for an unknown id."""
    return _call(settings, lambda client: client.stop_action(workflow_id))


def close() -> None:
    """Close the clients and stop the background loop (also done at exit)."""
    _portal.close()


class _Portal:
    """An event loop in a daemon thread, and one connected client per settings on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[str, Client] = {}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("the synchronous action functions cannot be called from their loop")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="conveyor-actions", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def client(self, settings: Settings) -> Client:
        # Runs on the portal's loop only, so no lock is needed around the dict.
        key = settings.model_dump_json()
        client = self._clients.get(key)
        if client is None:
            client = Client(_backend(settings))
            await client.__aenter__()
            self._clients[key] = client
        return client

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        clients = list(self._clients.values())
        self._clients.clear()

        async def close_all() -> None:
            for client in clients:
                await client.__aexit__(None, None, None)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            loop.close()


def _backend(settings: Settings) -> Any:
    from conveyor.actions import ActionRegistry

    registry = ActionRegistry.default()
    if settings.backend == "temporal":
        from conveyor.backends.temporal.backend import TemporalBackend

        return TemporalBackend(registry, settings)
    from conveyor.backends.local import LocalBackend

    return LocalBackend(registry, settings)


def _call(settings: Settings | None, use: Callable[[Client], Awaitable[T]]) -> T:
    chosen = settings if settings is not None else Settings()

    async def call() -> T:
        return await use(await _portal.client(chosen))

    return _portal.run(call())


_portal = _Portal()
atexit.register(_portal.close)
