"""Every shell command of README.md and docs/*.md runs, against a real `conveyor serve`.

Each fenced ``bash`` block of those files is one test, run by bash (``-e -o pipefail``) in a
scratch directory that has the repository's `examples/`, with `conveyor` on PATH, and a
server started as `make run` starts it (the examples, a local key, the demo job service).
A new page or block is picked up on its own.

What the docs assume, the test provides:

- the addresses: `127.0.0.1:8080` / `localhost:8080` (the server) and `127.0.0.1:8081` (the
  demo job service) become the ports the test's processes got;
- the variables a reader fills in, written in the docs as a placeholder (`TOKEN=...`,
  `export KEY=cvk_...`): those lines are left out and the variables set from the server
  (`CONVEYOR_API_KEY`, `KEY`, `ADMIN`: the local admin key; `TOKEN`: the events token;
  `URL`, `API`: the server; `RUN`, and `RUN_ID` in the text: a finished run of `hello`).

A block that cannot run here is marked in the markdown, on the line before it, with
``<!-- docs-test: skip REASON -->``; the reason is required.

A block passes when bash exits 0 and no answer was a 401 or 404 (`curl -s` exits 0 on
those): a wrong key, URL or id in the docs fails here.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b\s*(.*?)\s*-->")
# Pages whose blocks need a set-up of their own are run whole by a test of their own.
OWN_TESTS = {
    "docs/operations.md": "tests/api/test_docs_operations.py",
    "docs/migrating-from-budpipeline.md": "tests/acceptance/test_docs_migrating.py",
}
FENCE = re.compile(r"^```(bash|sh|shell)\s*$")
PLACEHOLDER = re.compile(r"^\s*(?:export\s+)?([A-Z_]+)=(?:cvk_)?\.\.\.\s*(#.*)?$")
REFUSED = re.compile(r'"type"\s*:\s*"(unauthorized|not_found)"')
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a page."""

    page: str
    line: int
    text: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    """Every shell block of every page, with its skip reason if it is marked."""
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            if FENCE.match(lines[index]):
                start = index
                end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
                before = lines[start - 1] if start else ""
                marked = SKIP.search(before)
                name = str(page.relative_to(ROOT))
                own = OWN_TESTS.get(name)
                found.append(
                    Block(
                        page=name,
                        line=start + 1,
                        text="\n".join(lines[start + 1 : end]),
                        skip=f"run by {own}" if own else marked.group(1) if marked else None,
                    )
                )
                index = end
            index += 1
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """The server the blocks run against, and the scratch directory they run in."""

    workdir: Path
    url: str
    demo_url: str
    env: dict[str, str]

    def script(self, text: str) -> str:
        """`text` with the docs' addresses and placeholders made this server's."""
        kept = [line for line in text.splitlines() if not PLACEHOLDER.match(line)]
        script = "\n".join(kept)
        script = script.replace("http://127.0.0.1:8080", self.url)
        script = script.replace("127.0.0.1:8080", self.url.removeprefix("http://"))
        script = script.replace("localhost:8080", self.url.removeprefix("http://"))
        script = script.replace("http://127.0.0.1:8081", self.demo_url)
        return script.replace("RUN_ID", "$RUN")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("docs")
    (workdir / "examples").symlink_to(ROOT / "examples")
    (workdir / ".conveyor").mkdir()
    port, demo_port = _free_port(), _free_port()
    url, demo_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{demo_port}"
    events_token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CONVEYOR_EVENTS_TOKEN": events_token,
        "COLUMNS": "160",
    }
    env.pop("CONVEYOR_DB_PATH", None)
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen(
        [
            str(BIN / "conveyor"), "serve", "--port", str(port),
            "--db", ".conveyor/conveyor.db", "--pipelines", "examples",
            "--local-key", "--demo-service", "--demo-port", str(demo_port),
        ],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (workdir / "serve.log").read_text()
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "conveyor serve did not start"
            time.sleep(0.1)
        key = (workdir / ".conveyor" / "conveyor.db.local-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        started = httpx.post(
            url + "/runs", json={"pipeline_id": "hello", "params": {"who": "Ada"}}, headers=headers
        )
        assert started.status_code == 201, started.text
        run = started.json()["run_id"]
        while httpx.get(f"{url}/runs/{run}", headers=headers).json()["status"] != "completed":
            assert time.monotonic() < deadline, "the hello run did not complete"
            time.sleep(0.05)
        env.update(
            CONVEYOR_API_KEY=key, KEY=key, ADMIN=key, TOKEN=events_token,
            URL=url, API=url, RUN=run,
        )  # fmt: skip
        yield Served(workdir, url, demo_url, env)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


ALL = blocks()


def test_the_pages_have_shell_blocks_and_every_skip_says_why() -> None:
    assert len(ALL) >= 10
    for block in ALL:
        assert block.skip is None or block.skip, f"{block.id}: a skip needs a reason"


@pytest.mark.parametrize("block", [b for b in ALL if b.skip is None], ids=lambda b: b.id)
def test_a_docs_block_runs(block: Block, served: Served) -> None:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", served.script(block.text)],
        cwd=served.workdir,
        env=served.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{output}"
    assert not REFUSED.search(output), f"{block.id} was refused:\n{output}"


def test_the_event_driven_example_runs_by_hand_as_it_says(served: Served) -> None:
    """The commands in examples/event_driven.yaml's description, against `make run`'s setup."""
    # Read as written: the description is folded YAML, which joins its lines.
    text = (ROOT / "examples" / "event_driven.yaml").read_text()
    head = yaml.safe_load(text)["description"]
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("conveyor ")]
    assert all(command in head for command in commands)
    assert commands
    for command in commands:
        done = subprocess.run(
            ["bash", "-e", "-c", served.script(command) + " --json"],
            cwd=served.workdir,
            env=served.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"status": "completed"' in done.stdout, done.stdout


def test_the_stored_event_driven_example_runs_with_its_default_service(served: Served) -> None:
    """The stored pipeline's default `service_url` is where the demo service listens."""
    assert served.demo_url.endswith(f":{served.demo_url.rsplit(':', 1)[1]}")
    headers = {"Authorization": f"Bearer {served.env['CONVEYOR_API_KEY']}"}
    stored = httpx.get(served.url + "/pipelines/event_driven", headers=headers).json()
    [service_url] = [p for p in stored["document"]["parameters"] if p["name"] == "service_url"]
    assert service_url["default"] == "http://127.0.0.1:8081"
    assert shutil.which("conveyor", path=served.env["PATH"])
