"""Every command of docs/operations.md, run as written, in a directory of its own.

Each bash block is preceded by `<!-- runs with: local|server|stopped -->`: `server` blocks run
while `conveyor serve` serves the directory's default database (`$URL`, `$CONVEYOR_API_KEY`
set as `make run` prints them), the others while nothing does. `RUN_ID` stands for a run the
command can act on: the test makes one of the right kind for each command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.acceptance.test_cli_run import ROOT, environment, eventually

DOC = ROOT / "docs" / "operations.md"
BLOCK = re.compile(r"<!-- runs with: (\w+) -->\n```bash\n(.*?)```", re.S)

NAP = """\
name: nap
steps:
  - id: greet
    action: log
    params: {message: about to nap}
  - id: nap
    action: delay
    depends_on: [greet]
    params: {seconds: 1}
"""
APPROVAL = {
    "name": "release",
    "steps": [{"id": "ask", "action": "approval", "params": {"title": "Ship it?"}}],
}
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


def blocks() -> list[tuple[str, list[str]]]:
    text = DOC.read_text(encoding="utf-8")
    found = [(kind, body.strip().splitlines()) for kind, body in BLOCK.findall(text)]
    # Every bash block is marked, so none is left unrun.
    assert len(found) == text.count("```bash"), "a bash block without a `runs with` marker"
    return found


class Sandbox:
    """A directory with the examples, where `conveyor` is on PATH, and its runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(ROOT / "examples", root / "examples")
        (root / "nap.yaml").write_text(NAP)
        self.env = {
            **environment(),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.local: dict[str, str] = {}
        self.remote: dict[str, str] = {}

    def conveyor(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).with_name("conveyor")), *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def shell(self, line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", line],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def make_local_runs(self) -> None:
        hello = self.conveyor("run", "examples/hello.yaml", "--json")
        self.local["hello"] = json.loads(hello.stdout)["run_id"]
        cancelled = self.conveyor("run", "nap.yaml", "--timeout", "0.3", "--json")
        self.local["cancelled"] = json.loads(cancelled.stdout)["run_id"]

    @contextmanager
    def serving(self) -> Iterator[str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with (self.root / "serve.log").open("a") as log:
            server = subprocess.Popen(
                [str(Path(sys.executable).with_name("conveyor")), "serve", "--port", str(port),
                 "--local-key", "--pipelines", "examples"],
                cwd=self.root, env=self.env, stdout=log, stderr=log,
            )  # fmt: skip
        try:
            eventually(lambda: _up(url))
            key = (self.root / ".conveyor" / "conveyor.db.local-key").read_text().strip()
            self.env.update({"URL": url, "CONVEYOR_API_KEY": key})
            headers = {"Authorization": f"Bearer {key}"}

            def start(body: dict[str, object]) -> str:
                answer = httpx.post(url + "/runs", json=body, headers=headers)
                assert answer.status_code == 201, answer.text
                return str(answer.json()["run_id"])

            self.remote["hello"] = start({"pipeline_id": "hello"})
            self.remote["waiting"] = start({"pipeline": WAITING})
            self.remote["approval"] = start({"pipeline": APPROVAL})
            eventually(
                lambda: httpx.get(
                    f"{url}/runs/{self.remote['approval']}/requests", headers=headers
                ).json()["items"]
            )
            yield url
        finally:
            server.terminate()
            server.wait(timeout=20)

    def run_for(self, line: str, remote: bool) -> str:
        runs = self.remote if remote else self.local
        if "requests answer" in line:
            return runs["approval"]
        if remote and ("runs cancel" in line or "runs retry" in line):
            return runs["waiting"]
        if "runs retry" in line:
            return runs["cancelled"]
        return runs["hello"]


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_every_command_of_the_operations_doc_runs_as_written(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    sandbox.make_local_runs()
    for kind, lines in blocks():
        if kind == "server":
            with sandbox.serving():
                _run_block(sandbox, lines, remote=True)
        else:
            assert kind in ("local", "stopped"), kind
            _run_block(sandbox, lines, remote=False)


def _run_block(sandbox: Sandbox, lines: list[str], *, remote: bool) -> None:
    for line in lines:
        command = line.replace("RUN_ID", sandbox.run_for(line, remote))
        done = sandbox.shell(command)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
