"""`Client.remote` has the local client's methods, and the same calls give the same answers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client, Event
from conveyor.client import ActionStatus
from conveyor.config import Settings
from conveyor.errors import (
    EngineBusyError,
    ParamValidationError,
    PipelineLoadError,
    PipelineValidationError,
    RemoteError,
    RunNotFoundError,
)
from tests.api import docs
from tests.api.conftest import MakeKey

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello.yaml"

WAITING = {
    "name": "waiting",
    "steps": [
        {
            "id": "wait",
            "action": "wait_for_event",
            "params": {"correlation_id": "{{ params.job }}", "timeout_seconds": 60},
        }
    ],
    "parameters": [{"name": "job", "type": "string", "required": True}],
    "outputs": {"status": "{{ steps.wait.outputs.status }}"},
}


def _run(view: Any) -> dict[str, Any]:
    """What a run came to, without what differs by nature (ids, times)."""
    outputs = {k: v for k, v in (view.outputs or {}).items() if k != "run"}
    steps = {}
    for step in view.steps:
        kept = step.outputs
        if isinstance(kept, dict):
            kept = {k: v for k, v in kept.items() if k not in ("run", "event")}
        steps[step.step_id] = (step.status.value, kept)
    return {"status": view.status.value, "outputs": outputs, "steps": steps}


async def _waiting(client: Client, run_id: str) -> None:
    async with asyncio.timeout(30):
        while True:
            if (await client.get(run_id)).steps[0].status.value == "waiting":
                return
            await asyncio.sleep(0.02)


async def scenario(client: Client) -> dict[str, Any]:
    """The same calls, on whichever client; returns what they came to."""
    seen: dict[str, Any] = {}

    hello = await client.start(HELLO, {"who": "Ada"})
    seen["hello"] = _run(await client.wait(hello, timeout=30))
    assert (await client.get(hello)).run_id == hello

    by_name = await client.start("log", {"message": "by name"})
    seen["action_by_name"] = _run(await client.wait(by_name, timeout=30))
    seen["run_action"] = _run(await client.run_action("set_output", {"values": {"n": 1}}))

    first = await client.start(docs.greeting(), idempotency_key="once")
    seen["idempotent"] = first == await client.start(docs.greeting(), idempotency_key="once")
    await client.wait(first, timeout=30)

    sleeping = await client.start(docs.sleeping(300))
    await _waiting(client, sleeping)
    with pytest.raises(TimeoutError):
        await client.wait(sleeping, timeout=0.2)
    seen["cancel"] = _run(await client.cancel(sleeping, reason="enough"))

    waiting = await client.start(WAITING, {"job": "job-1"})
    await _waiting(client, waiting)
    receipt = await client.send_event({"workflow_id": "job-1", "status": "COMPLETED"})
    seen["event"] = (receipt.status.value, receipt.correlation_id, receipt.deliveries)
    seen["after_event"] = _run(await client.wait(waiting, timeout=30))
    early = await client.send_event(Event(correlation_id="job-2", data={"status": "COMPLETED"}))
    seen["early_event"] = (early.status.value, early.correlation_id)
    later = await client.start(WAITING, {"job": "job-2"})
    seen["early_event_run"] = _run(await client.wait(later, timeout=30))

    action = await client.start_action("log", {"message": "nomad"})
    await client.wait(action, timeout=30)
    seen["action_status"] = await client.get_action_status(action)
    seen["action_result"] = await client.get_action_result(action)
    seen["unknown_status"] = await client.get_action_status("no-such-run")
    seen["unknown_stop"] = await client.stop_action("no-such-run")
    page = await client.list_action_runs(page_size=1)
    seen["action_page"] = (len(page.runs), page.runs[0].action, page.next_page_token is not None)

    runs = await client.list_runs()
    seen["runs"] = sorted((run.pipeline, run.status.value) for run in runs)
    seen["failed_runs"] = len(await client.list_runs(status=["failed"]))

    with pytest.raises(RunNotFoundError) as missing:
        await client.get("no-such-run")
    seen["not_found"] = str(missing.value)
    with pytest.raises(ParamValidationError) as bad_params:
        await client.start_action("log", {"message": "x", "colour": "red"})
    seen["bad_params"] = [(p.name, p.message) for p in bad_params.value.problems]
    with pytest.raises(PipelineValidationError) as bad_pipeline:
        await client.start(docs.broken())
    seen["bad_pipeline"] = sorted(str(getattr(i, "path", "")) for i in bad_pipeline.value.issues)
    with pytest.raises(PipelineLoadError):
        await client.start("no_such_action_or_file")
    return seen


async def test_the_same_calls_give_the_same_answers_locally_and_remotely(
    tmp_path: Path, server_url: str, make_key: MakeKey
) -> None:
    async with Client.local(db_path=tmp_path / "local.db") as local:
        here = await scenario(local)
    async with Client.remote(server_url, make_key("ada", "write")) as remote:
        there = await scenario(remote)

    assert there == here
    assert here["hello"]["outputs"] == {"greeting": "Hello, Ada!"}
    assert here["cancel"]["steps"]["nap"] == ("cancelled", None)
    assert here["event"] == ("routed", "job-1", 1)
    assert here["early_event"] == ("pending", "job-2")
    assert here["after_event"]["status"] == here["early_event_run"]["status"] == "completed"
    assert here["action_status"] is ActionStatus.COMPLETED
    assert here["unknown_status"] is here["unknown_stop"] is ActionStatus.UNKNOWN
    assert here["bad_params"][0][0] == "colour"


async def test_a_remote_run_belongs_to_the_keys_owner(server_url: str, make_key: MakeKey) -> None:
    async with Client.remote(server_url, make_key("ada", "write")) as remote:
        run_id = await remote.start(HELLO)
        assert (await remote.wait(run_id, timeout=30)).owner == "ada"
        with pytest.raises(ValueError, match="owner: runs on a server belong to the API key"):
            await remote.start(HELLO, owner="bob")
    async with Client.remote(server_url, make_key("bob", "read")) as other:
        with pytest.raises(RunNotFoundError):
            await other.get(run_id)


async def test_a_refused_key_and_an_unreachable_server_are_one_clear_error(
    server_url: str,
) -> None:
    with pytest.raises(RemoteError, match="refused the API key") as refused:
        async with Client.remote(server_url, "cvk_nobody_secret"):
            pass
    assert refused.value.status_code == 401
    with pytest.raises(RemoteError, match="needs an API key"):
        async with Client.remote(server_url):
            pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(RemoteError, match=f"cannot connect to the server at {closed}"):
        async with Client.remote(closed, "key"):
            pass


async def test_local_on_a_database_a_server_holds_says_to_use_remote(
    settings: Settings, server_url: str
) -> None:
    with pytest.raises(EngineBusyError) as busy:
        async with Client.local(db_path=settings.db_path):
            pass
    message = str(busy.value)
    assert message.startswith(f"the database {settings.db_path} is in use by another engine")
    assert message.endswith("use it through Client.remote(url, api_key)")
    assert busy.value.__cause__ is None and busy.value.__suppress_context__
