"""A small external job service on 127.0.0.1 that reports back to Conveyor over HTTP.

It behaves like the services an event-driven step calls (BudPipeline's model-add, simulator
and deployment services): ``POST /jobs`` with a ``callback_topic`` answers at once with
``{"workflow_id": ...}`` (202) and the work goes on in a thread; the service publishes
progress and then a completion (or a failure) to the topic as CloudEvents. Here a topic is an
HTTP URL from the service's own configuration, Conveyor's ``POST /events``, sent with the
events token, as a Dapr sidecar would deliver them.

What a job does is chosen by the request's ``mode``:

- ``normal``: progress 25 and 75, then ``COMPLETED`` with a result;
- ``early``: ``COMPLETED`` is published (and accepted) before the POST is answered;
- ``fail``: progress 30, then ``FAILED`` with the request's ``message``;
- ``silent``: accepted, never reported on;
- ``hang``: the POST itself is never answered (until the service stops).

``POST /jobs/{id}/cancel`` records a cancellation (what a step's cleanup calls).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

MODES = ("normal", "early", "fail", "silent", "hang")


@dataclass
class Config:
    """Where the service publishes: topic name to URL, and the token it sends."""

    topic_urls: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    step_seconds: float = 0.05
    """The pause before each published event: the work "takes" this long."""


@dataclass
class Job:
    """A job the service accepted, and what became of its events."""

    workflow_id: str
    request: dict[str, Any]
    published: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the job is cancelled through ``POST /jobs/{id}/cancel``."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set once every event of the job is published (at once for `silent` and `hang`)."""


class PublishFailed(RuntimeError):
    """Conveyor did not accept an event."""


class FakeJobService:
    """The service; use as a context manager, `url` is its base URL.

    Args:
        config: Where to publish; may be filled in after the service starts (its URL is
            needed to configure Conveyor, and Conveyor's to configure it).
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.jobs: dict[str, Job] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeJobService:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()  # Lets a hanging request and waiting workers go.
        self._server.shutdown()
        self._server.server_close()
        for worker in self._workers:
            worker.join(timeout=30)

    def job(self, workflow_id: str) -> Job:
        """The job with that id."""
        with self._lock:
            return self.jobs[workflow_id]

    # ------------------------------------------------------------ the work

    def submit(self, request: dict[str, Any]) -> Job:
        """Accept a job; `early` mode publishes its completion before this returns."""
        job = Job(workflow_id=f"job-{uuid.uuid4().hex[:12]}", request=request)
        with self._lock:
            self.jobs[job.workflow_id] = job
        mode = request.get("mode", "normal")
        if mode == "early":
            self._publish(job, {"status": "COMPLETED", "result": {"early": True}})
            job.done.set()
        elif mode in ("silent", "hang"):
            job.done.set()
        else:
            worker = threading.Thread(target=self._work, args=(job, mode), daemon=True)
            self._workers.append(worker)
            worker.start()
        return job

    def _work(self, job: Job, mode: str) -> None:
        if mode == "fail":
            steps: list[dict[str, Any]] = [
                {"status": "RUNNING", "progress": 30, "message": "warming up"},
                {"status": "FAILED", "message": job.request.get("message", "the job failed")},
            ]
        else:
            steps = [
                {"status": "RUNNING", "progress": 25, "message": "a quarter"},
                {"status": "RUNNING", "progress": 75, "message": "three quarters"},
                {"status": "COMPLETED", "result": {"size": job.request.get("size", 1)}},
            ]
        try:
            for data in steps:
                if self._stopping.wait(self.config.step_seconds) or job.cancelled.is_set():
                    return
                self._publish(job, data)
        except (PublishFailed, httpx.HTTPError) as exc:
            self.errors.append(f"{job.workflow_id}: {exc}")
        finally:
            job.done.set()

    def _publish(self, job: Job, data: dict[str, Any]) -> None:
        """Send one CloudEvent about `job` to its callback topic, and keep the receipt."""
        topic = str(job.request["callback_topic"])
        event = {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "type": f"jobs.{str(data['status']).lower()}",
            "source": "fake-job-service",
            "datacontenttype": "application/json",
            "data": {"workflow_id": job.workflow_id, **data},
        }
        headers = {"content-type": "application/cloudevents+json"}
        if self.config.token:
            headers["authorization"] = f"Bearer {self.config.token}"
        response = httpx.post(
            self.config.topic_urls[topic], content=json.dumps(event), headers=headers, timeout=30
        )
        if response.status_code != 202:
            raise PublishFailed(f"{response.status_code}: {response.text}")
        job.published.append(event)
        job.receipts.append(response.json())

    def cancel(self, workflow_id: str) -> bool:
        """Mark a job cancelled; False for an unknown id."""
        with self._lock:
            job = self.jobs.get(workflow_id)
        if job is None:
            return False
        job.cancelled.set()
        return True

    def hang(self) -> None:
        """Block a request's thread until the service stops."""
        self._stopping.wait()


def _handler_for(service: FakeJobService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self._body()
            parts = self.path.strip("/").split("/")
            if parts == ["jobs"]:
                self._submit(body)
            elif len(parts) == 3 and parts[0] == "jobs" and parts[2] == "cancel":
                found = service.cancel(parts[1])
                self._answer(200 if found else 404, {"cancelled": found})
            else:
                self._answer(404, {"error": f"no route {self.path}"})

        def _submit(self, body: Any) -> None:
            if not isinstance(body, dict):
                self._answer(400, {"error": "the body must be a JSON object"})
                return
            topic = body.get("callback_topic")
            if topic not in service.config.topic_urls:
                self._answer(400, {"error": f"unknown callback_topic {topic!r}"})
                return
            if body.get("mode", "normal") not in MODES:
                self._answer(400, {"error": f"mode must be one of {', '.join(MODES)}"})
                return
            if body.get("mode") == "hang":
                service.hang()
                return
            try:
                job = service.submit(body)
            except (PublishFailed, httpx.HTTPError) as exc:
                self._answer(502, {"error": f"could not publish: {exc}"})
                return
            self._answer(202, {"workflow_id": job.workflow_id})

        def _body(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError:
                return None

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # The tests read the service's state, not its access log.

    return Handler
