"""`conveyor keys ...` and `conveyor serve`, run as a user would, in their own processes."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_cli_run import Background, conveyor, eventually

GOOD = """\
name: good
steps:
  - id: a
    action: log
    params: {message: hi}
"""
BAD = """\
name: bad
steps:
  - id: a
    action: no_such_action
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    made = conveyor("keys", "create", "--owner", "ada", "--scope", "write", "--db", db)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("cvk_")
    assert "not shown again" in made.stderr
    key_id = token.split("_")[1]
    as_json = json.loads(
        conveyor("keys", "create", "--owner", "bo", "--scope", "read", "--db", db, "--json").stdout
    )
    assert as_json["token"].startswith(f"cvk_{as_json['id']}_")
    listed = json.loads(conveyor("keys", "list", "--db", db, "--json").stdout)
    assert [(k["id"], k["owner"], k["scope"]) for k in listed] == [
        (key_id, "ada", "write"),
        (as_json["id"], "bo", "read"),
    ]
    assert token.split("_", 2)[2] not in conveyor("keys", "list", "--db", db).stdout
    assert conveyor("keys", "revoke", key_id, "--db", db).returncode == 0
    assert conveyor("keys", "revoke", key_id, "--db", db).returncode == 1
    revoked = json.loads(conveyor("keys", "list", "--db", db, "--json").stdout)
    assert revoked[0]["revoked_at"] is not None


def test_keys_create_refuses_a_bad_scope_or_owner(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    assert conveyor("keys", "create", "--owner", "a", "--scope", "root", "--db", db).returncode == 2
    assert conveyor("keys", "create", "--owner", " ", "--scope", "read", "--db", db).returncode == 2


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.org"])
def test_insecure_refuses_a_host_that_is_not_loopback(tmp_path: Path, host: str) -> None:
    done = conveyor("serve", "--insecure", "--host", host, "--db", str(tmp_path / "c.db"))
    assert done.returncode == 2
    assert "loopback" in done.stderr


class Server:
    """`conveyor serve` in the background; stopped with SIGINT, like Ctrl-C."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = str(tmp_path / "c.db")
        self.process = Background(
            "serve", "--port", str(self.port), "--db", self.db, *args,
            stderr=tmp_path / "serve.log",
        )  # fmt: skip
        eventually(self._up)

    def _up(self) -> bool:
        if self.process.process.poll() is not None:
            raise AssertionError(f"serve exited: {self.process.stderr}")
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> bool:
        """Stop it; whether it shut down cleanly.

        A clean stop on SIGINT exits 130 (128 + SIGINT), as a shell expects after Ctrl-C.
        """
        self.process.process.send_signal(signal.SIGINT)
        code, _ = self.process.finish()
        return code in (0, 130) and "Application shutdown complete" in self.process.stderr


@pytest.fixture
def pipelines_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "good.yaml").write_text(GOOD)
    (folder / "bad.yaml").write_text(BAD)
    (folder / "ignored.txt").write_text("not a pipeline")
    return folder


@pytest.fixture
def server(tmp_path: Path, pipelines_dir: Path) -> Iterator[Server]:
    running = Server(tmp_path, "--pipelines", str(pipelines_dir))
    try:
        yield running
    finally:
        if running.process.process.poll() is None:
            running.process.kill()


def test_serve_needs_a_key_and_loads_the_pipelines(server: Server) -> None:
    assert httpx.get(server.url + "/pipelines").status_code == 401
    made = conveyor("keys", "create", "--owner", "ops", "--scope", "admin", "--db", server.db)
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    listed = httpx.get(server.url + "/pipelines", headers=headers).json()
    assert [(p["name"], p["owner"]) for p in listed["items"]] == [("good", "local")]
    log = server.process.stderr
    assert "skipped bad.yaml" in log
    assert "no API keys yet" in log
    assert server.stop()


def test_serve_loads_the_same_directory_once(tmp_path: Path, pipelines_dir: Path) -> None:
    first = Server(tmp_path, "--insecure", "--pipelines", str(pipelines_dir))
    assert first.stop()
    second = Server(tmp_path, "--insecure", "--pipelines", str(pipelines_dir))
    try:
        listed = httpx.get(second.url + "/pipelines").json()
        assert [(p["name"], p["latest_version"]) for p in listed["items"]] == [("good", 1)]
    finally:
        assert second.stop()


def test_serve_insecure_warns_and_needs_no_key(tmp_path: Path) -> None:
    server = Server(tmp_path, "--insecure")
    try:
        assert "auth is off" in server.process.stderr
        started = httpx.post(
            server.url + "/runs", json={"action": "log", "params": {"message": "x"}}
        )
        assert started.status_code == 201
        assert started.json()["owner"] == "local"
    finally:
        assert server.stop()


def test_serve_refuses_a_database_another_engine_holds(tmp_path: Path) -> None:
    server = Server(tmp_path, "--insecure")
    try:
        done = conveyor("serve", "--port", str(_free_port()), "--db", server.db, "--insecure")
        assert done.returncode == 1
        assert "in use by another engine" in done.stderr
    finally:
        assert server.stop()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_serve_for_local_use_keeps_a_key_and_runs_the_event_driven_example(
    tmp_path: Path,
) -> None:
    """What `make run` starts: the examples, a local key, the demo job service."""
    server = Server(
        tmp_path, "--pipelines", str(EXAMPLES), "--local-key", "--demo-service",
        "--demo-port", str(_free_port()),
    )  # fmt: skip
    try:
        key_file = Path(server.db + ".local-key")
        token = key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o777 == 0o600
        headers = {"Authorization": f"Bearer {token}"}
        found = re.search(r"demo job service on (http://127\.0\.0\.1:\d+)", server.process.stderr)
        assert found, server.process.stderr
        started = httpx.post(
            server.url + "/runs",
            json={"pipeline_id": "event_driven", "params": {"service_url": found.group(1)}},
            headers=headers,
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]

        def finished() -> dict[str, object] | None:
            view: dict[str, object] = httpx.get(
                f"{server.url}/runs/{run_id}", headers=headers
            ).json()
            return view if view["status"] not in ("pending", "running") else None

        view = eventually(finished, timeout=30)
        assert view["status"] == "completed", view
        assert view["outputs"]["message"] == "resize-images done"  # type: ignore[index]
    finally:
        assert server.stop()
    _, banner = server.process.finish()
    assert f"CONVEYOR_API_KEY={token}" in banner
    assert f"{server.url}/runs" in banner

    # The next start reuses the key that still works.
    again = Server(tmp_path, "--local-key")
    try:
        assert Path(again.db + ".local-key").read_text().strip() == token
    finally:
        assert again.stop()


WAITING = {
    "name": "waits",
    "steps": [
        {
            "id": "wait",
            "action": "wait_for_event",
            "params": {"correlation_id": "never", "timeout_seconds": 600},
        }
    ],
}


def test_serve_stops_at_once_with_a_live_stream_open(tmp_path: Path) -> None:
    """An open SSE stream ends when the server is asked to stop; it does not hold the stop."""
    server = Server(tmp_path, "--insecure")
    started = httpx.post(server.url + "/runs", json={"pipeline": WAITING})
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    opened = threading.Event()
    lines: list[str] = []

    def read() -> None:
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/stream", timeout=60) as answer:
            opened.set()
            lines.extend(answer.iter_lines())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    began = time.monotonic()
    assert server.stop()
    stopped_in = time.monotonic() - began
    reader.join(10)
    assert not reader.is_alive()
    # Uvicorn's graceful timeout is 10 s: stopping well before it means the stream ended.
    assert stopped_in < 5, f"stop took {stopped_in:.1f}s"
    assert "Traceback" not in server.process.stderr
    assert any(line.startswith("id:") for line in lines)
