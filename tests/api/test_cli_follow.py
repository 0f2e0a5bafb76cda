"""`conveyor run --follow` and `conveyor runs show/list --server`, against a live server.

The server runs on a thread of its own (`serve_in_thread`): the CLI runs in this thread, in
process through typer's CliRunner, with its own event loop; one test runs the real console
script. Runs are started over HTTP, as another client of the server would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from conveyor.actions import ActionRegistry
from conveyor.api import Service, create_app
from conveyor.api.keys import create_key
from conveyor.backends.local.store import Store
from conveyor.cli import app
from conveyor.cli.app import _register
from conveyor.cli.remote import Remote, apply_event, as_started
from conveyor.config import Settings
from conveyor.runs import ItemView, RunEvent, RunView, StepView
from tests.acceptance.test_cli_run import command, environment
from tests.api import docs
from tests.api.live import serve_in_thread
from tests.api.test_stream import progressing
from tests.integration.engine.actions import EchoAction

_register()

WAIT = 30.0


@dataclass
class Server:
    """A live server, keys of two owners on it, and the database under it."""

    url: str
    ada: str
    bob: str
    db: Path

    def start(self, pipeline: dict[str, Any], token: str | None = None) -> str:
        """Start a run as ada (or the owner of `token`); its id."""
        response = httpx.post(
            f"{self.url}/runs",
            json={"pipeline": pipeline},
            headers={"Authorization": f"Bearer {token or self.ada}"},
            timeout=WAIT,
        )
        assert response.status_code == 201, response.text
        run_id: str = response.json()["run_id"]
        return run_id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "conveyor.db"
    # Keys made on a connection of their own: the server's belongs to its thread.
    store = Store(db).open()
    ada = create_key(store, "ada", "write")[1]
    bob = create_key(store, "bob", "write")[1]
    store.close()
    registry = ActionRegistry.default()
    registry.add(EchoAction)
    service = Service.create(Settings(db_path=db), registry=registry)
    with serve_in_thread(create_app(service)) as url:
        yield Server(url, ada, bob, db)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    # Wide, so Rich does not wrap the rows the tests look for; no key from the environment
    # unless a test gives one.
    env = {"COLUMNS": "250", "CONVEYOR_API_KEY": "", **(env or {})}
    return CliRunner().invoke(app, list(args), env=env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_run_follow_shows_the_run_and_exits_0_when_it_completed(server: Server) -> None:
    run_id = server.start(progressing())
    done = cli("run", "--follow", run_id, "--server", server.url, "--api-key", server.ada)
    assert done.exit_code == 0, done.output
    for step in ("first", "middle", "last"):
        assert step in done.output
    assert f"Run {run_id} completed" in done.output


def test_a_live_run_is_followed_to_its_end(server: Server) -> None:
    run_id = server.start(
        {
            "name": "slow",
            "steps": [{"id": "wait", "action": "echo", "params": {"value": 1, "sleep": 1.5}}],
        }
    )
    done = cli("runs", "show", run_id, "--follow", "--server", server.url, "--api-key", server.ada)
    assert done.exit_code == 0, done.output
    assert "wait" in done.output and "completed" in done.output


def test_the_views_follow_every_change_of_the_stream(server: Server) -> None:
    run_id = server.start(progressing())

    async def views() -> list[Any]:
        async with Remote(server.url, server.ada) as remote:
            return [view async for view in remote.follow(run_id)]

    seen = asyncio.run(views())
    # After the server's view of the moment, the run from its start, one change at a time.
    middle = [(s.status.value, s.progress) for s in (view.step("middle") for view in seen[1:])]
    changes = [state for i, state in enumerate(middle) if i == 0 or middle[i - 1] != state]
    assert changes == [
        ("pending", 0),
        ("running", 0),
        ("running", 25),
        ("running", 50),
        ("running", 75),
        ("completed", 100),
    ]
    *applied, final = seen
    assert final.status.value == "completed"
    # The view built from the entries alone ends where the server's own view is.
    assert applied[-1].status == final.status
    assert [(s.step_id, s.status, s.progress) for s in applied[-1].steps] == [
        (s.step_id, s.status, s.progress) for s in final.steps
    ]
    assert applied[-1].progress == final.progress == 100


@pytest.mark.parametrize(
    ("pipeline", "status"), [(docs.failing(), "failed"), (docs.sleeping(600), "cancelled")]
)
def test_a_run_that_did_not_complete_exits_1(
    server: Server, pipeline: dict[str, Any], status: str
) -> None:
    run_id = server.start(pipeline)
    if status == "cancelled":
        httpx.post(
            f"{server.url}/runs/{run_id}/cancel",
            headers={"Authorization": f"Bearer {server.ada}"},
            timeout=WAIT,
        ).raise_for_status()
    done = cli("run", "--follow", run_id, "--server", server.url, "--api-key", server.ada)
    assert done.exit_code == 1, done.output
    assert f"Run {run_id} {status}" in done.output


def test_the_api_key_may_come_from_the_environment(server: Server) -> None:
    run_id = server.start(progressing())
    done = cli(
        "runs",
        "show",
        run_id,
        "--follow",
        "--server",
        server.url,
        env={"CONVEYOR_API_KEY": server.ada},
    )
    assert done.exit_code == 0, done.output


def test_follow_json_prints_the_finished_run(server: Server) -> None:
    run_id = server.start(progressing())
    done = cli("run", "--follow", run_id, "--server", server.url, "--api-key", server.ada, "--json")
    assert done.exit_code == 0, done.output
    run = json.loads(done.stdout)
    assert run["run_id"] == run_id and run["status"] == "completed"


def test_an_unknown_or_foreign_run_is_not_found(server: Server) -> None:
    foreign = server.start(progressing(), token=server.bob)
    for run_id in ("nope", foreign):
        done = cli("run", "--follow", run_id, "--server", server.url, "--api-key", server.ada)
        assert done.exit_code == 1
        assert f"run {run_id} not found" in done.output


def test_a_refused_or_missing_key_is_named(server: Server) -> None:
    run_id = server.start(progressing())
    wrong = cli("run", "--follow", run_id, "--server", server.url, "--api-key", "cvk_x_y")
    assert wrong.exit_code == 1
    assert "the server refused the API key" in wrong.output
    missing = cli("runs", "show", run_id, "--follow", "--server", server.url)
    assert missing.exit_code == 1
    assert "--api-key" in missing.output and "CONVEYOR_API_KEY" in missing.output


def test_a_server_that_is_not_there_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = cli("run", "--follow", "r1", "--server", url, "--api-key", "k")
    assert done.exit_code == 1
    assert f"cannot connect to the server at {url}" in done.output
    bad = cli("runs", "list", "--server", "localhost:8080", "--api-key", "k")
    assert bad.exit_code == 1
    assert "--server must be an http:// or https:// URL" in bad.output


@pytest.mark.parametrize(
    "args",
    [
        ("run",),
        ("run", "pipeline.yaml", "--follow", "r1"),
        ("run", "--follow", "r1", "-p", "a=1"),
        ("runs", "show", "r1", "--server", "http://127.0.0.1:1", "--db", "x.db"),
    ],
)
def test_contradictory_options_are_usage_errors(args: tuple[str, ...]) -> None:
    done = cli(*args)
    assert done.exit_code == 2, done.output


def test_runs_list_and_show_ask_the_server(server: Server) -> None:
    mine = server.start(progressing("mine"))
    theirs = server.start(progressing("theirs"), token=server.bob)
    assert cli("run", "--follow", mine, "--server", server.url, "--api-key", server.ada)
    listed = cli("runs", "list", "--server", server.url, "--api-key", server.ada, "--json")
    assert listed.exit_code == 0, listed.output
    assert [run["run_id"] for run in json.loads(listed.stdout)] == [mine]
    table = cli("runs", "list", "--server", server.url, "--api-key", server.ada)
    assert mine in table.output and theirs not in table.output
    assert f"Runs on {server.url}" in table.output
    shown = cli("runs", "show", mine, "--server", server.url, "--api-key", server.ada)
    assert shown.exit_code == 0, shown.output
    assert "middle" in shown.output
    hidden = cli("runs", "show", theirs, "--server", server.url, "--api-key", server.ada)
    assert hidden.exit_code == 1
    assert f"run {theirs} not found" in hidden.output


def test_run_file_on_a_server_starts_and_follows_it(server: Server, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(progressing("remote")))
    done = cli("run", str(good), "--server", server.url, "--api-key", server.ada)
    assert done.exit_code == 0, done.output
    assert "completed" in done.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(docs.broken()))
    refused = cli("run", str(bad), "--server", server.url, "--api-key", server.ada)
    assert refused.exit_code == 1
    assert "cannot start" in refused.output
    assert "steps[0].action" in refused.output


def test_follow_without_a_server_reads_the_local_database(server: Server) -> None:
    run_id = server.start(progressing())
    assert cli("run", "--follow", run_id, "--server", server.url, "--api-key", server.ada)
    done = cli("runs", "show", run_id, "--follow", "--db", str(server.db))
    assert done.exit_code == 0, done.output
    assert f"Run {run_id} completed" in done.output
    missing = cli("runs", "show", "nope", "--follow", "--db", str(server.db))
    assert missing.exit_code == 1
    assert "no run with id 'nope'" in missing.output


def test_the_console_script_follows_with_exit_codes(server: Server) -> None:
    ok = server.start(progressing())
    failed = server.start(docs.failing())
    for run_id, code in ((ok, 0), (failed, 1)):
        done = subprocess.run(
            [*command(), "runs", "show", run_id, "--follow", "--server", server.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**environment(), "CONVEYOR_API_KEY": server.ada},
        )
        assert done.returncode == code, done.stderr
        assert run_id in done.stdout


def test_item_entries_move_their_step_and_the_run() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    items = [ItemView(index=i, status="pending", attempt=0) for i in range(2)]
    step = StepView(step_id="each", status="running", attempt=1, items=items)
    view = RunView(run_id="r", pipeline="p", status="running", params={}, steps=[step])

    def entry(**fields: Any) -> RunEvent:
        return RunEvent(run_id="r", at=at, **fields)

    view = apply_event(view, entry(kind="step", step_id="each", index=0, status="completed"))
    view = apply_event(
        view, entry(kind="progress", step_id="each", index=1, status="running", progress=50)
    )
    each = view.step("each")
    assert [item.status.value for item in each.items or []] == ["completed", "running"]
    assert each.progress == view.progress == 75
    # Entries of unknown steps or items, and kinds that change no view, leave it as it was.
    for other in (
        entry(kind="step", step_id="ghost", status="failed"),
        entry(kind="step", step_id="each", index=7, status="failed"),
        entry(kind="event", step_id="each", data={"action": "ignore"}),
    ):
        assert apply_event(view, other) == view
    fresh = as_started(view)
    assert fresh.status.value == "pending" and fresh.progress == 0
    assert [item.status.value for item in fresh.step("each").items or []] == ["pending"] * 2
