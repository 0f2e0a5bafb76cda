"""Serve an app under uvicorn on 127.0.0.1 at a free port, for tests that talk HTTP to it.

`serve` runs the server as a task on the caller's event loop, so a test can also reach the
service's objects directly (`service.backend`) between requests. `serve_in_thread` runs it on
a loop of its own in another thread, for synchronous clients (schemathesis) that would
otherwise block the loop the server needs.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

_START_TIMEOUT = 10.0


def _bound_socket() -> socket.socket:
    # Bound before the server starts: the port is ours, with no window for another process.
    # IPPROTO_TCP named explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # protocol says TCP, and with it on every response waits out a 40 ms delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _server(app: FastAPI) -> uvicorn.Server:
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", ws="none", http="h11", access_log=False
    )
    return uvicorn.Server(config)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` on this loop; yields its base URL (``http://127.0.0.1:PORT``)."""
    sock = _bound_socket()
    server = _server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Serve `app` from another thread with its own loop; yields its base URL."""
    sock = _bound_socket()
    server = _server(app)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="api-test-server", daemon=True)
    thread.start()
    try:
        for _ in range(int(_START_TIMEOUT / 0.005)):
            if server.started or failure or not thread.is_alive():
                break
            threading.Event().wait(0.005)
        if not server.started:
            raise RuntimeError(f"the server did not start: {failure}")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        sock.close()


def client_for(server_url: str, token: str | None) -> httpx.AsyncClient:
    """A client of the server sending `token` as its API key (use as `async with`)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server_url, headers=headers, timeout=30)
