"""Shared pipelines: every owner reads and runs them; only their owner changes them."""

from __future__ import annotations

from pathlib import Path

import httpx

from conveyor.api import Service
from conveyor.api.catalog import Catalog, load_directory
from conveyor.api.deps import LOCAL_OWNER
from tests.api import docs
from tests.api.conftest import MakeKey
from tests.api.live import client_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_examples(service: Service) -> None:
    loaded, problems = load_directory(
        Catalog(service.store), service.registry, EXAMPLES, LOCAL_OWNER
    )
    assert "hello" in loaded and problems == []


async def test_another_owner_reads_and_runs_an_example_but_cannot_change_it(
    service: Service, server_url: str, make_key: MakeKey
) -> None:
    _load_examples(service)
    async with client_for(server_url, make_key("bob", "write")) as bob:
        listed = (await bob.get("/pipelines")).json()
        hello = next(item for item in listed["items"] if item["name"] == "hello")
        assert hello["owner"] == LOCAL_OWNER and hello["shared"] is True
        shown = await bob.get("/pipelines/hello")
        assert shown.status_code == 200, shown.text
        assert (await bob.get(f"/pipelines/{hello['id']}/versions")).status_code == 200

        started = await bob.post("/runs", json={"pipeline_id": "hello", "params": {"who": "Bob"}})
        assert started.status_code == 201, started.text
        run = started.json()
        assert run["owner"] == "bob"
        done = await service.backend.wait(run["run_id"], timeout=30)
        assert done.status == "completed"
        assert done.outputs == {"greeting": "Hello, Bob!"}

        changed = await bob.put("/pipelines/hello", json={"document": docs.greeting("hello")})
        assert changed.status_code == 403, changed.text
        assert changed.json()["error"]["message"].startswith(
            "pipeline 'hello' is shared by 'local' to read and run; only its owner may change"
        )
        deleted = await bob.delete("/pipelines/hello")
        assert deleted.status_code == 403
        assert (await bob.get("/pipelines/hello")).json()["latest_version"] == 1


async def test_loading_again_keeps_examples_shared_and_adds_no_version(
    service: Service, server_url: str, make_key: MakeKey
) -> None:
    _load_examples(service)
    _load_examples(service)
    async with client_for(server_url, make_key("carol", "read")) as carol:
        shown = (await carol.get("/pipelines/hello")).json()
        assert shown["shared"] is True and shown["latest_version"] == 1


async def test_an_owner_shares_a_pipeline_of_their_own(server_url: str, make_key: MakeKey) -> None:
    async with (
        client_for(server_url, make_key("ada", "write")) as ada,
        client_for(server_url, make_key("bob", "write")) as bob,
    ):
        private = await ada.post("/pipelines", json={"document": docs.greeting("private")})
        assert private.json()["shared"] is False
        shared = await ada.post(
            "/pipelines", json={"document": docs.greeting("common"), "shared": True}
        )
        assert shared.status_code == 201 and shared.json()["shared"] is True

        assert (await bob.get("/pipelines/private")).status_code == 404
        assert (await bob.get(f"/pipelines/{private.json()['id']}")).status_code == 404
        assert (await bob.get("/pipelines/common")).status_code == 200
        assert [p["name"] for p in (await bob.get("/pipelines")).json()["items"]] == ["common"]

        # Bob's own pipeline of the same name comes first when he names it.
        mine = await bob.post("/pipelines", json={"document": docs.greeting("common", "hey")})
        assert mine.status_code == 201
        assert (await bob.get("/pipelines/common")).json()["owner"] == "bob"

        unshared = await ada.put(
            "/pipelines/common", json={"document": docs.greeting("common"), "shared": False}
        )
        assert unshared.json()["shared"] is False
        assert (await bob.get(f"/pipelines/{shared.json()['id']}")).status_code == 404


async def test_admin_may_change_a_shared_pipeline(
    service: Service, http: httpx.AsyncClient
) -> None:
    _load_examples(service)
    changed = await http.put("/pipelines/hello", json={"document": docs.greeting("hello")})
    # An admin resolves names among its own pipelines and the shared ones.
    assert changed.status_code == 200, changed.text
    assert changed.json()["latest_version"] == 2 and changed.json()["shared"] is True
