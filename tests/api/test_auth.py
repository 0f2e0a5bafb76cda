"""API keys: 401 without a valid key, 403 for a weak scope, 404 across owners, admins see all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.api import Service, create_app
from conveyor.api.keys import authenticate, create_key, list_keys, revoke_key
from conveyor.config import Settings
from tests.api import docs
from tests.api.conftest import EVENTS_TOKEN, MakeKey
from tests.api.live import client_for, serve


async def test_no_key_is_401_with_a_challenge(anon: httpx.AsyncClient) -> None:
    for response in (await anon.get("/runs"), await anon.post("/runs", json={})):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer cvk_0000000000000000_not-the-secret",
        "Bearer cvk_nonsense",
        "Bearer something-else",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
async def test_a_bad_key_is_401(server_url: str, header: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, headers={"Authorization": header}) as c:
        response = await c.get("/pipelines")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_wrong_secret_for_a_real_id_is_401(server_url: str, make_key: MakeKey) -> None:
    token = make_key("alice", "admin")
    forged = token[: token.rindex("_") + 1] + "x" * 43
    async with client_for(server_url, forged) as client:
        assert (await client.get("/pipelines")).status_code == 401


async def test_a_revoked_key_is_401(server_url: str, make_key: MakeKey, service: Service) -> None:
    token = make_key("alice", "write")
    async with client_for(server_url, token) as client:
        assert (await client.get("/pipelines")).status_code == 200
        key_id = token.split("_")[1]
        assert revoke_key(service.store, key_id) is True
        assert (await client.get("/pipelines")).status_code == 401
    assert revoke_key(service.store, key_id) is False


async def test_health_ready_and_metrics_need_no_key(anon: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):
        assert (await anon.get(path)).status_code == 200, path


async def test_a_read_key_reads_but_cannot_write(server_url: str, make_key: MakeKey) -> None:
    async with client_for(server_url, make_key("alice", "read")) as client:
        assert (await client.get("/actions")).status_code == 200
        assert (await client.get("/runs")).status_code == 200
        assert (await client.post("/pipelines/validate", json={"document": "x"})).status_code == 200
        for response in (
            await client.post("/pipelines", json={"document": docs.greeting()}),
            await client.post("/runs", json={"pipeline": docs.greeting()}),
            await client.put("/pipelines/x", json={"document": docs.greeting()}),
            await client.delete("/pipelines/x"),
            await client.post("/runs/x/cancel"),
            await client.post("/runs/x/retry"),
        ):
            assert response.status_code == 403
            assert response.json()["error"]["type"] == "forbidden"


async def _as(server_url: str, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    async with client_for(server_url, token) as client:
        return await client.request(method, path, **kw)


async def test_owners_are_isolated(server_url: str, make_key: MakeKey, service: Service) -> None:
    alice, bob = make_key("alice", "write"), make_key("bob", "write")
    pipeline = (
        await _as(server_url, alice, "POST", "/pipelines", json={"document": docs.greeting()})
    ).json()
    run = (await _as(server_url, alice, "POST", "/runs", json={"pipeline": docs.sleeping()})).json()
    for method, path in (
        ("GET", f"/pipelines/{pipeline['id']}"),
        ("GET", f"/pipelines/{pipeline['id']}/versions"),
        ("GET", "/pipelines/greet"),
        ("DELETE", f"/pipelines/{pipeline['id']}"),
        ("GET", f"/runs/{run['run_id']}"),
        ("GET", f"/runs/{run['run_id']}/steps"),
        ("GET", f"/runs/{run['run_id']}/timeline"),
        ("POST", f"/runs/{run['run_id']}/cancel"),
        ("POST", f"/runs/{run['run_id']}/retry"),
    ):
        response = await _as(server_url, bob, method, path)
        assert response.status_code == 404, (method, path)
    started = await _as(server_url, bob, "POST", "/runs", json={"pipeline_id": pipeline["id"]})
    assert started.status_code == 404
    assert (await _as(server_url, bob, "GET", "/pipelines")).json()["total"] == 0
    assert (await _as(server_url, bob, "GET", "/runs")).json()["total"] == 0
    # Bob may use the same name, and the same idempotency key, without meeting Alice's.
    assert (
        await _as(server_url, bob, "POST", "/pipelines", json={"document": docs.greeting()})
    ).status_code == 201
    body = {"pipeline": docs.greeting(), "idempotency_key": "same"}
    first = await _as(server_url, alice, "POST", "/runs", json=body)
    second = await _as(server_url, bob, "POST", "/runs", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["run_id"] != second.json()["run_id"]
    assert (await service.backend.get(run["run_id"])).status == "running"


async def test_an_admin_sees_every_owner(server_url: str, make_key: MakeKey) -> None:
    alice, admin = make_key("alice", "write"), make_key("root", "admin")
    pipeline = (
        await _as(server_url, alice, "POST", "/pipelines", json={"document": docs.greeting()})
    ).json()
    run = (await _as(server_url, alice, "POST", "/runs", json={"pipeline": docs.sleeping()})).json()
    assert (await _as(server_url, admin, "GET", f"/pipelines/{pipeline['id']}")).status_code == 200
    assert (await _as(server_url, admin, "GET", "/pipelines")).json()["total"] == 1
    assert (await _as(server_url, admin, "GET", "/runs")).json()["total"] == 1
    only_bob = await _as(server_url, admin, "GET", "/runs", params={"owner": "bob"})
    assert only_bob.json()["total"] == 0
    cancelled = await _as(server_url, admin, "POST", f"/runs/{run['run_id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    retried = (await _as(server_url, admin, "POST", f"/runs/{run['run_id']}/retry")).json()
    assert retried["owner"] == "alice", "a retry keeps the run's owner"


async def test_the_owner_filter_is_ignored_for_non_admins(
    server_url: str, make_key: MakeKey
) -> None:
    alice, bob = make_key("alice", "write"), make_key("bob", "read")
    await _as(server_url, alice, "POST", "/runs", json={"pipeline": docs.greeting()})
    peek = await _as(server_url, bob, "GET", "/runs", params={"owner": "alice"})
    assert peek.json()["total"] == 0


@pytest.fixture
async def insecure(settings: Settings) -> AsyncIterator[str]:
    service = Service.create(settings, auth_enabled=False)
    async with serve(create_app(service)) as url:
        yield url


async def test_insecure_mode_needs_no_key(insecure: str) -> None:
    async with httpx.AsyncClient(base_url=insecure) as client:
        created = await client.post("/pipelines", json={"document": docs.greeting()})
        assert created.status_code == 201
        assert created.json()["owner"] == "local"
        assert (await client.get("/runs")).status_code == 200


def test_keys_are_stored_hashed(service: Service) -> None:
    service.store.open()
    try:
        key, token = create_key(service.store, "alice", "read")
        assert token.startswith(f"cvk_{key.id}_")
        secret = token.split("_", 2)[2]
        stored = service.store.db.execute(
            "SELECT secret_hash FROM api_keys WHERE id = ?", (key.id,)
        ).fetchone()[0]
        assert secret not in stored
        assert authenticate(service.store, token) == key
        assert [k.id for k in list_keys(service.store)] == [key.id]
        with pytest.raises(ValueError, match="scope"):
            create_key(service.store, "alice", "root")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="owner"):
            create_key(service.store, " ", "read")
    finally:
        service.store.close()


def test_the_events_token_is_checked(service: Service) -> None:
    assert service.auth.events_token_matches(EVENTS_TOKEN)
    assert not service.auth.events_token_matches(EVENTS_TOKEN + "x")
