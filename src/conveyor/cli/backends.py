"""The backend a command runs or reads runs on: the configured one (`CONVEYOR_BACKEND`).

`conveyor run`, `conveyor runs ...` and `conveyor events send` work on either backend; a
command that only the embedded database can answer refuses, in one line, on Temporal.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from conveyor.cli.common import fail
from conveyor.config import Settings

if TYPE_CHECKING:
    # Imported when a command runs: see `commands_run`.
    from conveyor.actions import ActionRegistry
    from conveyor.backends.local import LocalBackend
    from conveyor.backends.temporal.backend import TemporalBackend

EXIT_USAGE = 2
CONNECT_TIMEOUT = 15.0
"""How long a command waits for the Temporal cluster to answer its connect."""

_connected: list[bool] = []
"""Not empty once this process connected to Temporal (see `exit_now_if_connected`)."""


def on_temporal(settings: Settings) -> bool:
    """Whether the configured backend is Temporal."""
    return settings.backend == "temporal"


def where(settings: Settings) -> str:
    """Where runs are, for messages: ``in PATH`` or ``on Temporal at ADDRESS``."""
    if on_temporal(settings):
        return f"on Temporal at {settings.temporal_address}"
    return f"in {settings.db_path}"


@asynccontextmanager
async def temporal(
    settings: Settings, registry: ActionRegistry | None = None
) -> AsyncIterator[TemporalBackend]:
    """The Temporal backend, connected; a cluster that cannot be reached is one line, exit 1."""
    from conveyor.backends.temporal.backend import TemporalBackend

    backend = TemporalBackend(registry, settings)
    target = f"Temporal at {settings.temporal_address} (CONVEYOR_BACKEND=temporal)"
    _connected.append(True)
    try:
        await asyncio.wait_for(backend.start(), CONNECT_TIMEOUT)
    except TimeoutError:
        fail(f"cannot reach {target}: no answer within {CONNECT_TIMEOUT:g}s")
    except Exception as exc:  # noqa: BLE001 - any connect failure is the same message
        fail(f"cannot reach {target}: {connect_reason(exc)}")
    try:
        yield backend
    finally:
        await backend.stop()


def connect_reason(exc: BaseException) -> str:
    """The useful part of a connect error (the core's text nests the OS error deep inside)."""
    text = str(exc)
    found = re.search(r'message: "([^"]+)"', text)
    if found:
        return found.group(1).lower()
    return (text.strip() or type(exc).__name__).splitlines()[0]


def exit_now_if_connected(code: int) -> None:
    """Leave at once (`os._exit`) if this process connected to Temporal; else return.

    Temporal's core keeps threads of its own that may call into Python while the interpreter
    finalizes, which aborts the process now and then ("PyGILState_Release ... finalizing",
    status -6) after everything was said and done.
    """
    if _connected:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@asynccontextmanager
async def reader(settings: Settings) -> AsyncIterator[LocalBackend | TemporalBackend]:
    """The configured backend, to read and cancel runs: the embedded database opened without
    driving runs (an engine may drive it elsewhere), or the Temporal cluster."""
    if on_temporal(settings):
        async with temporal(settings) as backend:
            yield backend
        return
    async with local_reader(settings) as local:
        yield local


@asynccontextmanager
async def local_reader(settings: Settings) -> AsyncIterator[LocalBackend]:
    """The embedded database opened without driving runs (an engine may drive it elsewhere)."""
    from conveyor.backends.local import LocalBackend

    local = LocalBackend(settings=settings, drive=False)
    await local.start()
    try:
        yield local
    finally:
        await local.stop()


def refuse_on_temporal(settings: Settings, command: str, instead: str) -> None:
    """Exit 2 with one line when `command` has no meaning on Temporal; `instead` says what to do."""
    if on_temporal(settings):
        fail(
            f"`conveyor {command}` reads the embedded database, and CONVEYOR_BACKEND is "
            f"temporal: {instead}",
            code=EXIT_USAGE,
        )
