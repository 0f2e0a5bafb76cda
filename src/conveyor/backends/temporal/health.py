"""A worker's `/health` endpoint: a minimal HTTP/1.1 server on asyncio, no framework.

An orchestrator probes it to know whether the worker polls (200) or is draining before it
exits (503), and how many activities it runs; anything but `GET /health` is answered 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_READ_TIMEOUT = 5.0


class HealthServer:
    """Serves `report()` as JSON at `/health`: 200 while `ready()`, 503 otherwise.

    Args:
        report: The body, read at each request.
        ready: Whether the worker is polling.
        host: The address to listen on (loopback unless told otherwise).
        port: The port; 0 picks a free one (read it from `port` after `start`).
    """

    def __init__(
        self,
        report: Callable[[], dict[str, Any]],
        ready: Callable[[], bool],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._report = report
        self._ready = ready
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the port is taken."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, body = self._answer(method, path.split("?", 1)[0])
            payload = json.dumps(body).encode()
            writer.write(
                (
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, ConnectionError):
            pass  # A probe that hung up or spoke nonsense gets nothing.
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        if path != "/health":
            return 404, {"error": {"type": "not_found", "message": f"no route {path}"}}
        if method not in ("GET", "HEAD"):
            return 405, {"error": {"type": "method_not_allowed", "message": "use GET"}}
        return (200 if self._ready() else 503), self._report()
