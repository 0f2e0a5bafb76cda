"""The CLI against a real `conveyor serve` (both in their own processes), and step logs over HTTP.

Cancel and retry with `--server`, the pipeline catalog, approvals answered from the CLI,
step logs (the route, the stream's `log` events, `runs logs`), retention in `serve`, and a key
made by `conveyor keys create` with no `--db` being one the server started by `make run` takes.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_cli_run import EXAMPLES, command, environment, eventually
from tests.api.test_cli import Server

APPROVAL = """\
name: release
steps:
  - id: ask
    action: approval
    params:
      title: Ship it?
      form:
        type: object
        required: [ticket]
        properties:
          ticket: {type: string}
outputs:
  ticket: "{{ steps.ask.outputs.data.ticket }}"
"""

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
FAILING = {
    "name": "failing",
    "steps": [
        {"id": "first", "action": "log", "params": {"message": "first line"}},
        {"id": "boom", "action": "fail", "depends_on": ["first"], "params": {"message": "no"}},
    ],
}


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environment(), **(env or {})},
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, "--insecure")
    try:
        yield running
    finally:
        if running.process.process.poll() is None:
            running.process.kill()


def start(server: Server | str, pipeline: dict[str, Any]) -> str:
    url = server if isinstance(server, str) else server.url
    started = httpx.post(url + "/runs", json={"pipeline": pipeline})
    assert started.status_code == 201, started.text
    return str(started.json()["run_id"])


def ended(server: Server, run_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        view: dict[str, Any] = httpx.get(f"{server.url}/runs/{run_id}").json()
        return view if view["status"] not in ("pending", "running") else None

    result: dict[str, Any] = eventually(finished)
    return result


def test_runs_cancel_and_retry_over_the_server(server: Server) -> None:
    waiting = start(server, WAITING)
    cancelled = cli("runs", "cancel", waiting, "--server", server.url, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"

    failed = start(server, FAILING)
    assert ended(server, failed)["status"] == "failed"
    detached = cli("runs", "retry", failed, "--server", server.url, "--detach")
    assert detached.returncode == 0, detached.stderr
    new_id = detached.stdout.strip()
    assert ended(server, new_id)["retry_of"] == failed
    followed = cli("runs", "retry", failed, "--server", server.url, "--json")
    assert followed.returncode == 1  # Followed to its end: it fails again.
    assert json.loads(followed.stdout)["status"] == "failed"

    unknown = cli("runs", "cancel", "nope", "--server", server.url)
    assert unknown.returncode == 1
    assert f"run nope not found on {server.url}" in unknown.stderr
    both = cli("runs", "cancel", waiting, "--server", server.url, "--db", "x.db")
    assert both.returncode == 2
    assert "--db and --server exclude each other" in both.stderr


def test_pipelines_over_the_server(server: Server, tmp_path: Path) -> None:
    pushed = cli(
        "pipelines", "push", str(EXAMPLES / "hello.yaml"), "--server", server.url, "--json"
    )
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["version"] == 1
    again = cli("pipelines", "push", str(EXAMPLES / "hello.yaml"), "--server", server.url, "--json")
    assert json.loads(again.stdout)["version"] == 2
    listed = json.loads(cli("pipelines", "list", "--server", server.url, "--json").stdout)
    assert [(p["name"], p["latest_version"]) for p in listed] == [("hello", 2)]
    versions = json.loads(
        cli("pipelines", "versions", "hello", "--server", server.url, "--json").stdout
    )
    assert [v["version"] for v in versions] == [2, 1]
    shown = cli("pipelines", "show", "hello", "--server", server.url)
    assert "hello version 2 of 2" in shown.stdout
    assert "action: log" in shown.stdout
    pulled = tmp_path / "hello.yaml"
    assert (
        cli("pipelines", "pull", "hello", "-o", str(pulled), "--server", server.url).returncode == 0
    )
    assert "name: hello" in pulled.read_text()
    assert cli("pipelines", "delete", "hello", "--server", server.url).returncode == 0
    gone = cli("pipelines", "show", "hello", "--server", server.url)
    assert gone.returncode == 1
    assert "404" in gone.stderr and "hello" in gone.stderr


def test_requests_list_and_answer_from_the_cli(server: Server, tmp_path: Path) -> None:
    import yaml

    run_id = start(server, yaml.safe_load(APPROVAL))
    eventually(lambda: httpx.get(f"{server.url}/runs/{run_id}/requests").json()["items"])

    listed = cli("requests", "list", "--server", server.url, "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert [(r["run_id"], r["step_id"], r["title"]) for r in found] == [(run_id, "ask", "Ship it?")]
    table = cli("requests", "list", run_id, "--server", server.url)
    assert "Ship it?" in table.stdout and run_id in table.stdout

    misfit = cli(
        "requests", "answer", run_id, "ask", "-d", "approve", "--data", "{}", "--server", server.url
    )
    assert misfit.returncode == 1
    assert "ticket" in misfit.stderr
    not_json = cli(
        "requests", "answer", run_id, "ask", "-d", "approve", "--data", "{", "--server", server.url
    )
    assert not_json.returncode == 2
    assert "'--data'" in not_json.stderr and "not JSON" in not_json.stderr

    answered = cli(
        "requests", "answer", run_id, "ask", "--decision", "approve",
        "--data", '{"ticket": "T-1"}', "--server", server.url,
    )  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    assert f"step ask of run {run_id} is completed" in answered.stdout
    assert ended(server, run_id)["outputs"] == {"ticket": "T-1"}
    assert "No open requests." in cli("requests", "list", "--server", server.url).stdout
    local = cli("requests", "list")
    assert local.returncode == 2
    assert "pass --server URL" in local.stderr


def test_step_logs_over_http_in_the_stream_and_from_the_cli(server: Server) -> None:
    run_id = start(server, FAILING)
    ended(server, run_id)

    every = httpx.get(f"{server.url}/runs/{run_id}/logs").json()
    assert [(line["step_id"], line["kind"], line["data"]["level"]) for line in every["items"]] == [
        ("first", "log", "info")
    ]
    assert "first line" in every["items"][0]["message"]
    one = httpx.get(f"{server.url}/runs/{run_id}/steps/boom/logs").json()
    assert one["items"] == []
    unknown = httpx.get(f"{server.url}/runs/{run_id}/steps/nope/logs")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == f"run {run_id} has no step 'nope'"
    assert httpx.get(f"{server.url}/runs/nope/logs").status_code == 404

    with httpx.stream("GET", f"{server.url}/runs/{run_id}/stream", timeout=30) as answer:
        text = "".join(answer.iter_text())
    assert "event: log" in text
    assert "first line" in text

    shown = cli("runs", "logs", run_id, "--server", server.url)
    assert shown.returncode == 0, shown.stderr
    assert "first #1 info" in shown.stdout and "first line" in shown.stdout
    followed = cli(
        "runs", "logs", run_id, "--follow", "--step", "first", "--server", server.url, "--json"
    )
    assert [json.loads(line)["step_id"] for line in followed.stdout.splitlines()] == ["first"]


def test_a_key_made_without_db_is_one_the_server_started_without_db_accepts(tmp_path: Path) -> None:
    """`make run` then `conveyor keys create`, as the README says: the same database."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w") as log:
        served = subprocess.Popen(
            [*command(), "serve", "--port", str(port), "--local-key"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True, env=environment(),
        )  # fmt: skip
    try:

        def up() -> bool:
            try:
                return httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually(up)
        assert "database: .conveyor/conveyor.db" in (tmp_path / "serve.log").read_text()
        made = cli("keys", "create", "--owner", "alice", "--scope", "write", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert "database: .conveyor/conveyor.db" in made.stderr
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        assert httpx.get(url + "/runs", headers=headers).status_code == 200
    finally:
        served.terminate()
        served.communicate(timeout=20)


def test_serve_prunes_by_its_retention_policy(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **environment(),
        # Every finished run is past this age at once; pruned every half second.
        "CONVEYOR_RETENTION": json.dumps({"older_than_days": 0.000001}),
        "CONVEYOR_RETENTION_BY_OWNER": json.dumps(
            {"keeper": {"older_than_days": 30, "statuses": ["failed"]}}
        ),
        "CONVEYOR_RETENTION_INTERVAL_SECONDS": "0.5",
    }
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [*command(), "serve", "--port", str(port), "--db", str(tmp_path / "c.db"),
             "--insecure"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env,
        )  # fmt: skip
    try:
        eventually(lambda: _up(url))
        run_id = start(url, FAILING)

        def gone() -> bool:
            return httpx.get(f"{url}/runs/{run_id}").status_code == 404

        eventually(gone)
        assert re.search(r"retention: deleted 1 run", (tmp_path / "serve.log").read_text())
        bad = cli(
            "serve",
            "--db",
            str(tmp_path / "x.db"),
            "--insecure",
            env={"CONVEYOR_RETENTION": '{"older_than_days": -1}'},
        )
        assert bad.returncode == 2
        assert "retention" in bad.stderr and "older_than_days" in bad.stderr
    finally:
        process.terminate()
        process.communicate(timeout=20)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
