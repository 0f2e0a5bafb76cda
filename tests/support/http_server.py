"""A real HTTP server on 127.0.0.1, for tests of anything that talks HTTP to another service.

It stands in for an external service, a Dapr sidecar, a webhook receiver: register a reply per
(method, path prefix), point the code under test at `server.url`, then look at what it was sent
in `server.requests`. It runs in a background thread on a free port, and only ever listens on
loopback.

    with HttpTestServer() as server:
        server.route("POST", "/v1.0/invoke/billing/method/", body={"ok": True})
        server.route("GET", "/slow", body="late", delay=2.0)        # for timeout tests
        server.route("POST", "/jobs", lambda request: Reply(201, {"id": request.json["n"]}))
        ...
        assert server.requests[0].json == {"n": 1}

A service that answers first and reports back later (the shape of event-driven actions) is a
handler whose `Reply` has an `after` callback: it runs in its own thread once the answer has
been sent, and may for instance post an event to the engine::

    def start_job(request: RecordedRequest) -> Reply:
        return Reply(202, {"workflow_id": "wf-1"}, after=lambda _: send_event("wf-1"))

In tests, the `http_server` fixture (registered in ``tests/conftest.py``) gives a started
server that is stopped after the test.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = [
    "HttpTestServer",
    "RecordedRequest",
    "Reply",
    "closed_port_url",
    "http_server",
]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: The HTTP method, upper case.
        path: The path, without the query string.
        query: Each query parameter's values, in order.
        headers: The headers, with lower-cased names.
        body: The raw body.
        client: The client's (host, port): requests over one kept-alive connection share it.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] = ("", 0)

    @property
    def json(self) -> Any:
        """The body decoded as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def param(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """The value of header `name` (any case), or None."""
        return self.headers.get(name.lower())


@dataclass
class Reply:
    """What the server answers.

    Attributes:
        status: The status code.
        body: A dict or list is sent as JSON, a str as text, bytes as they are, None as an
            empty body.
        headers: Extra headers (a Content-Type here wins over the one derived from `body`).
        delay: Seconds to wait before answering (to make a client time out).
        after: Called with the request, in a thread of its own, once the answer is sent.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    after: Callable[[RecordedRequest], None] | None = None

    def encode(self) -> tuple[bytes, str | None]:
        """The body's bytes and its content type."""
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[RecordedRequest], Reply]


@dataclass
class _Route:
    method: str
    prefix: str
    handler: Handler


class HttpTestServer:
    """A threaded HTTP server on 127.0.0.1 with canned or computed replies.

    Routes match on the method (``"*"`` for any) and the longest path prefix; a request that
    matches none gets 404 with a JSON error naming it. Every request is recorded, matched or
    not.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        """Make a server; it listens once started (`start()` or ``with``).

        Args:
            host: The loopback address to listen on (any of 127.0.0.0/8).
            port: The port; a free one when 0.
            tls: Serve HTTPS with this server-side context; the names clients asked for
                (TLS SNI) are recorded in `server_names`.
        """
        if not host.startswith("127."):
            raise ValueError(f"a test server listens on loopback only, not {host!r}")
        self.host = host
        self._port = port
        self._tls = tls
        self.server_names: list[str | None] = []
        self.requests: list[RecordedRequest] = []
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Life cycle.

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self._port), _handler_class(self))
        if self._tls is not None:
            self._tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        # Handler threads may be sleeping out a delay when the test ends; they must not keep
        # the process (or stop()) waiting.
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; replies still delaying are cut short."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Where it is.

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Its base URL, ``http://127.0.0.1:<port>`` (no trailing slash)."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The full URL of `path` on this server."""
        return f"{self.url}/{path.lstrip('/')}"

    # What it answers.

    def route(
        self,
        method: str,
        prefix: str,
        handler: Handler | Reply | None = None,
        *,
        status: int = 200,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer requests of `method` whose path starts with `prefix`.

        Args:
            method: The HTTP method, or ``"*"`` for any.
            prefix: The path prefix, e.g. ``"/v1.0/publish/"``.
            handler: A function of the request returning a `Reply`, or a fixed `Reply`; when
                None, a `Reply` is made of `status`, `body`, `headers` and `delay`.
            status: The status code of the fixed reply.
            body: The body of the fixed reply (see `Reply.body`).
            headers: The headers of the fixed reply.
            delay: Seconds to wait before the fixed reply.
        """
        if handler is None:
            handler = Reply(status, body, dict(headers or {}), delay)
        if isinstance(handler, Reply):
            fixed = handler

            def answer(_request: RecordedRequest) -> Reply:
                return fixed

            handler = answer
        with self._lock:
            self._routes.append(_Route(method.upper(), prefix, handler))

    def _match(self, method: str, path: str) -> Handler | None:
        with self._lock:
            candidates = [
                route
                for route in self._routes
                if route.method in (method, "*") and path.startswith(route.prefix)
            ]
        if not candidates:
            return None
        # Longest prefix wins; among equals the route added last, so a test can override.
        best = max(enumerate(candidates), key=lambda pair: (len(pair[1].prefix), pair[0]))
        return best[1].handler

    # What it received.

    def requests_to(self, prefix: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests whose path starts with `prefix` (and of `method`, if given)."""
        with self._lock:
            return [
                request
                for request in self.requests
                if request.path.startswith(prefix)
                and (method is None or request.method == method.upper())
            ]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests were received, then return them all.

        Raises:
            TimeoutError: fewer arrived within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} requests within {timeout} s, got {len(self.requests)}"
                    )
                self._received.wait(remaining)
            return list(self.requests)

    def _record(self, request: RecordedRequest) -> None:
        with self._received:
            self.requests.append(request)
            self._received.notify_all()


def _handler_class(server: HttpTestServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command.upper(),
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                client=(str(self.client_address[0]), int(self.client_address[1])),
            )
            server._record(request)
            handler = server._match(request.method, request.path)
            if handler is None:
                reply = Reply(
                    HTTPStatus.NOT_FOUND,
                    {"error": f"no route for {request.method} {request.path}"},
                )
            else:
                try:
                    reply = handler(request)
                # A broken handler is the test's bug: answer 500 saying so rather than hang.
                except Exception as exc:  # noqa: BLE001
                    reply = Reply(500, {"error": f"test handler failed: {exc!r}"})
            if reply.delay and server._stopping.wait(reply.delay):
                return
            payload, content_type = reply.encode()
            try:
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(payload))}
                if content_type is not None:
                    headers["Content-Type"] = content_type
                headers.update(reply.headers)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test): nothing is listening for the answer.
                return
            if reply.after is not None:
                threading.Thread(target=reply.after, args=(request,), daemon=True).start()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            # Quiet: pytest shows what the test asserts, not an access log.
            return

    return _Handler


def closed_port_url() -> str:
    """A ``http://127.0.0.1:<port>`` URL on which nothing listens (connections are refused).

    The port is taken from the OS and released at once, so nothing else holds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def http_server() -> Iterator[HttpTestServer]:
    """A started `HttpTestServer`, stopped after the test."""
    with HttpTestServer() as server:
        yield server
