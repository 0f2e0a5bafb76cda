"""A small job service, the kind an event-driven step talks to.

It behaves like the services BudPipeline's event-driven actions call: ``POST /jobs`` answers at
once with ``{"workflow_id": "<uuid>"}`` and the work goes on in the background; when it makes
progress and when it is done, the service publishes an event carrying that ``workflow_id``
back to the pipeline engine, which routes it to the step waiting on that id.

How events travel is one function, `Publish`: by default `cli_publisher` runs
``conveyor events send`` against the engine's database (the embedded engine takes it from its
inbox); a service talking to an engine with an HTTP events endpoint would pass a function that
POSTs the same body there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("conveyor.demo.service")

Publish = Callable[[dict[str, Any]], None]
"""Sends one event (a JSON object carrying ``workflow_id``) to the engine.

A publisher that cannot deliver raises `PublishError` (or an `OSError` for the transport).
"""


class PublishError(RuntimeError):
    """An event could not be handed to the engine."""


def cli_publisher(db_path: Path) -> Publish:
    """A publisher that runs ``conveyor events send --db db_path ...`` for each event.

    Raises (when called):
        PublishError: the command failed or hung; its output is in the message.
    """
    command = _conveyor_command()

    def publish(event: dict[str, Any]) -> None:
        data = {key: value for key, value in event.items() if key != "workflow_id"}
        argv = [
            *command,
            "events",
            "send",
            "--db",
            str(db_path),
            "--correlation-id",
            str(event["workflow_id"]),
            "--data",
            json.dumps(data),
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PublishError("`conveyor events send` did not finish within 60 s") from exc
        if done.returncode != 0:
            raise PublishError(
                f"`conveyor events send` exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()}"
            )

    return publish


def http_publisher(events_url: str, token: str) -> Publish:
    """A publisher that POSTs each event as JSON to an engine's HTTP events endpoint.

    Raises (when called):
        PublishError: the endpoint answered with an error status.
    """
    import httpx

    def publish(event: dict[str, Any]) -> None:
        answer = httpx.post(
            events_url,
            json=event,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if answer.status_code >= 400:
            raise PublishError(f"POST {events_url} answered {answer.status_code}: {answer.text}")

    return publish


def _conveyor_command() -> list[str]:
    # The console script of the interpreter running this, so the demo works from a virtualenv
    # that is not activated; the module call is the same program when the script is missing.
    script = Path(sys.executable).with_name("conveyor")
    if script.exists():
        return [str(script)]
    found = shutil.which("conveyor")
    if found:
        return [found]
    return [sys.executable, "-c", "from conveyor.cli import main; main()"]


@dataclass
class Job:
    """A submitted job and what the service published about it."""

    workflow_id: str
    request: dict[str, Any]
    submitted_at: float
    published: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


class JobService:
    """The job service: an HTTP server on 127.0.0.1 with a thread per job.

    Use as a context manager; `url` is its base URL once started.

    Args:
        publish: How events reach the engine.
        delay_seconds: How long a job takes; the progress event is sent halfway.
        host: The address to listen on.
        port: The port; 0 picks a free one.
    """

    def __init__(
        self,
        publish: Publish,
        *,
        delay_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.publish = publish
        self.delay_seconds = delay_seconds
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> JobService:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="job-service", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the jobs in flight to publish their events."""
        self._server.shutdown()
        self._server.server_close()
        for worker in list(self._workers):
            worker.join(timeout=self.delay_seconds + 30)

    def __enter__(self) -> JobService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def submit(self, request: dict[str, Any]) -> Job:
        """Accept a job and start working on it in the background."""
        job = Job(workflow_id=str(uuid.uuid4()), request=request, submitted_at=time.time())
        with self._lock:
            self.jobs[job.workflow_id] = job
        worker = threading.Thread(
            target=self._work, args=(job,), name=f"job-{job.workflow_id[:8]}", daemon=True
        )
        self._workers.append(worker)
        worker.start()
        return job

    def _work(self, job: Job) -> None:
        half = self.delay_seconds / 2
        name = job.request.get("job", "job")
        events: list[dict[str, Any]] = [
            {"workflow_id": job.workflow_id, "type": "progress", "progress": 50},
            {
                "workflow_id": job.workflow_id,
                "type": "results",
                "payload": {
                    "event": "results",
                    "content": {"status": "COMPLETED", "message": f"{name} done"},
                },
            },
        ]
        for event in events:
            time.sleep(half)
            try:
                self.publish(event)
            except (PublishError, OSError) as exc:
                # A failed publish leaves the step waiting until its timeout; say why here.
                job.error = str(exc)
                log.error("publish_failed", workflow_id=job.workflow_id, error=str(exc))
                return
            job.published.append((time.time(), event))


def _handler_for(service: JobService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/jobs":
                self._answer(404, {"error": f"no route {self.path}"})
                return
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._answer(400, {"error": "the body must be JSON"})
                return
            if not isinstance(body, dict):
                self._answer(400, {"error": "the body must be a JSON object"})
                return
            job = service.submit(body)
            self._answer(202, {"workflow_id": job.workflow_id})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            # Requests are logged through structlog like the rest of the demo, not to stderr raw.
            log.info("request", line=format % args)

    return Handler
