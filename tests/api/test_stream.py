"""Server-Sent Events over HTTP: a run's timeline live, resumable, per owner, without leaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conveyor.actions import ActionRegistry
from conveyor.api import Service
from tests.api import docs
from tests.api.conftest import MakeKey
from tests.api.live import client_for
from tests.integration.engine.actions import EchoAction

WAIT = 30.0


@pytest.fixture(scope="module")
def action_registry() -> ActionRegistry:
    """The installed actions plus `echo`, which reports progress."""
    registry = ActionRegistry.default()
    registry.add(EchoAction)
    return registry


def progressing(name: str = "progressing") -> dict[str, Any]:
    """Three steps in a row; the middle one reports progress three times."""
    return {
        "name": name,
        "steps": [
            {"id": "first", "action": "log", "params": {"message": "one"}},
            {
                "id": "middle",
                "action": "echo",
                "depends_on": ["first"],
                "params": {"value": 1, "progress": [25, 50, 75]},
            },
            {"id": "last", "action": "log", "depends_on": ["middle"], "params": {"message": "3"}},
        ],
    }


@dataclass
class Message:
    """One Server-Sent Event as received."""

    event: str | None
    id: str | None
    data: Any


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The events of an SSE response, as they arrive (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield Message(fields.get("event"), fields.get("id"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def read_all(client: httpx.AsyncClient, url: str, **kwargs: Any) -> list[Message]:
    """Every event of a stream that ends by itself."""
    async with asyncio.timeout(WAIT), client.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [message async for message in messages(response)]


async def start(client: httpx.AsyncClient, pipeline: dict[str, Any]) -> str:
    response = await client.post("/runs", json={"pipeline": pipeline})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(what)  # pragma: no cover - the timeout raises first


def ended(message: Message, run_id: str) -> bool:
    """Whether `message` is the entry of `run_id` finishing."""
    data = message.data
    return bool(
        data["run_id"] == run_id and data["kind"] == "run" and data["status"] == "completed"
    )


def listeners(service: Service) -> int:
    return len(service.backend._listeners)


async def test_a_run_streams_every_entry_in_order_then_ends(http: httpx.AsyncClient) -> None:
    run_id = await start(http, progressing())
    got = await read_all(http, f"/runs/{run_id}/stream")
    *entries, end = got
    assert end.event == "end"
    assert end.id is None
    assert end.data["status"] == "completed"
    assert [s["status"] for s in end.data["steps"]] == ["completed"] * 3
    seqs = [int(m.id or 0) for m in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Complete: the stream holds exactly the stored timeline.
    timeline = (await http.get(f"/runs/{run_id}/timeline")).json()["items"]
    assert [m.data for m in entries] == timeline
    assert all(m.event == m.data["kind"] and m.data["run_id"] == run_id for m in entries)
    assert entries[0].data["kind"] == "run" and entries[-1].data["kind"] == "run"
    assert entries[-1].data["status"] == "completed"
    progress = [m.data["progress"] for m in entries if m.event == "progress"]
    assert progress == [25, 50, 75]
    steps = [(m.data["step_id"], m.data["status"]) for m in entries if m.event == "step"]
    assert ("middle", "running") in steps and ("last", "completed") in steps


async def test_a_live_run_streams_changes_as_they_happen(
    http: httpx.AsyncClient, service: Service
) -> None:
    run_id = await start(http, docs.sleeping(seconds=600))
    got: list[Message] = []
    async with asyncio.timeout(WAIT), http.stream("GET", f"/runs/{run_id}/stream") as response:
        async for message in messages(response):
            got.append(message)
            if message.event == "step" and message.data["status"] == "running":
                # The stream is live: a cancel made now arrives on it.
                await http.post(f"/runs/{run_id}/cancel", json={"reason": "enough"})
    assert got[-1].event == "end"
    assert got[-1].data["status"] == "cancelled"
    assert got[-2].data == {**got[-2].data, "kind": "run", "status": "cancelled"}


async def test_last_event_id_and_after_resume_with_only_the_rest(
    http: httpx.AsyncClient,
) -> None:
    run_id = await start(http, progressing())
    whole = await read_all(http, f"/runs/{run_id}/stream")
    entries = whole[:-1]
    middle = entries[len(entries) // 2].id
    assert middle is not None
    rest = await read_all(http, f"/runs/{run_id}/stream", headers={"Last-Event-ID": middle})
    assert [m.id for m in rest] == [m.id for m in whole if m.id is None or int(m.id) > int(middle)]
    by_query = await read_all(http, f"/runs/{run_id}/stream?after={middle}")
    assert [m.data for m in by_query] == [m.data for m in rest]
    # The header is what a reconnecting browser sends, with the first URL: it wins.
    both = await read_all(http, f"/runs/{run_id}/stream?after=0", headers={"Last-Event-ID": middle})
    assert [m.id for m in both] == [m.id for m in rest]
    last = entries[-1].id
    assert last is not None
    only_end = await read_all(http, f"/runs/{run_id}/stream", headers={"Last-Event-ID": last})
    assert [m.event for m in only_end] == ["end"]


async def test_unknown_or_foreign_runs_are_404_before_the_stream(
    server_url: str, make_key: MakeKey
) -> None:
    async with (
        client_for(server_url, make_key("ada", "write")) as ada,
        client_for(server_url, make_key("bob", "read")) as bob,
    ):
        run_id = await start(ada, progressing())
        for client, path in ((ada, "/runs/nope/stream"), (bob, f"/runs/{run_id}/stream")):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize(
    ("query", "headers", "path"),
    [
        ("?after=-1", {}, "query.after"),
        ("?after=x", {}, "query.after"),
        ("", {"Last-Event-ID": "abc"}, "header.last-event-id"),
        ("?since=3", {}, "query.since"),
    ],
)
async def test_a_bad_cursor_is_a_422_naming_it(
    http: httpx.AsyncClient, query: str, headers: dict[str, str], path: str
) -> None:
    run_id = await start(http, progressing())
    for url in (f"/runs/{run_id}/stream{query}", f"/stream{query}"):
        response = await http.get(url, headers=headers)
        assert response.status_code == 422, response.text
        assert [f["path"] for f in response.json()["error"]["fields"]] == [path]


async def test_streams_need_a_key(anon: httpx.AsyncClient) -> None:
    for path in ("/runs/x/stream", "/stream"):
        response = await anon.get(path)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "unauthorized"


async def test_the_owner_stream_shows_only_the_owners_runs(
    server_url: str, make_key: MakeKey, http: httpx.AsyncClient
) -> None:
    async with (
        client_for(server_url, make_key("ada", "write")) as ada,
        client_for(server_url, make_key("bob", "write")) as bob,
    ):
        earlier = await start(ada, progressing("earlier"))
        await read_all(ada, f"/runs/{earlier}/stream")  # Ended before the stream opens.
        seen: list[Message] = []
        async with asyncio.timeout(WAIT), ada.stream("GET", "/stream") as response:
            assert response.status_code == 200
            bobs = await start(bob, progressing("bobs"))
            await read_all(bob, f"/runs/{bobs}/stream")
            adas = await start(ada, progressing("adas"))
            async for message in messages(response):
                seen.append(message)
                if ended(message, adas):
                    break
        # Without a cursor it starts now: neither the earlier run nor another owner's.
        assert {m.data["run_id"] for m in seen} == {adas}
        own = (await ada.get(f"/runs/{adas}/timeline")).json()["items"]
        assert [m.data for m in seen] == own
        # From the start, resumed past the earlier run's first entry: ada's entries only.
        first = (await ada.get(f"/runs/{earlier}/timeline")).json()["items"][0]["seq"]
        replayed: list[Message] = []
        headers = {"Last-Event-ID": str(first)}
        async with asyncio.timeout(WAIT), ada.stream("GET", "/stream", headers=headers) as response:
            async for message in messages(response):
                replayed.append(message)
                if ended(message, adas):
                    break
        assert {m.data["run_id"] for m in replayed} == {earlier, adas}
        seqs = [int(m.id or 0) for m in replayed]
        assert seqs == sorted(seqs) and seqs[0] > first
    # An admin sees every owner's runs.
    admin_seen: list[Message] = []
    async with asyncio.timeout(WAIT), http.stream("GET", "/stream?after=0") as response:
        async for message in messages(response):
            admin_seen.append(message)
            if ended(message, adas):
                break
    assert {m.data["run_id"] for m in admin_seen} == {earlier, bobs, adas}


async def test_a_client_that_leaves_unsubscribes(
    http: httpx.AsyncClient, service: Service, server_url: str, admin_token: str
) -> None:
    run_id = await start(http, docs.sleeping(seconds=600))
    before = listeners(service)
    for path in (f"/runs/{run_id}/stream", "/stream"):
        async with (
            client_for(server_url, admin_token) as client,
            client.stream("GET", path) as response,
        ):
            assert response.status_code == 200
            await eventually(lambda: listeners(service) == before + 1, "subscribed")
        # The connection is closed: the server's generator ends and lets go of its listener.
        await eventually(lambda: listeners(service) == before, "unsubscribed")
    await http.post(f"/runs/{run_id}/cancel")


async def test_an_idle_stream_gets_heartbeats(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI's keep-alive interval (15 s), shortened so the test need not wait for it.
    monkeypatch.setattr("fastapi.routing._PING_INTERVAL", 0.2)
    run_id = await start(http, docs.sleeping(seconds=600))
    comments = 0
    async with asyncio.timeout(WAIT), http.stream("GET", f"/runs/{run_id}/stream") as response:
        async for line in response.aiter_lines():
            comments += line.startswith(":")
            if comments == 2:
                break
    await http.post(f"/runs/{run_id}/cancel")
