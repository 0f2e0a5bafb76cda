"""The action catalog: listing by category, one action, checking param values."""

from __future__ import annotations

import httpx

from conveyor.actions import ActionRegistry


async def test_lists_every_action_by_category(
    http: httpx.AsyncClient, action_registry: ActionRegistry
) -> None:
    response = await http.get("/actions")
    assert response.status_code == 200
    body = response.json()
    names = [group["category"] for group in body["categories"]]
    assert names == sorted(names)
    types = [a["type"] for group in body["categories"] for a in group["actions"]]
    assert sorted(types) == action_registry.types()
    assert body["total"] == len(action_registry)
    for group in body["categories"]:
        assert all(a["category"] == group["category"] for a in group["actions"])


async def test_filters_one_category(http: httpx.AsyncClient) -> None:
    body = (await http.get("/actions", params={"category": "Control Flow"})).json()
    assert [g["category"] for g in body["categories"]] == ["Control Flow"]
    assert body["total"] == len(body["categories"][0]["actions"])
    empty = (await http.get("/actions", params={"category": "nope"})).json()
    assert empty["categories"] == []
    assert empty["total"] == 0


async def test_shows_one_action(http: httpx.AsyncClient) -> None:
    response = await http.get("/actions/delay")
    assert response.status_code == 200
    meta = response.json()
    assert meta["type"] == "delay"
    assert meta["execution_mode"] == "event_driven"
    assert [p["name"] for p in meta["params"]] == ["seconds"]


async def test_unknown_action_is_404(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/actions/no_such"),
        await http.post("/actions/no_such/validate", json={"params": {}}),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
        assert "no_such" in response.json()["error"]["message"]


async def test_valid_params_come_back_coerced(http: httpx.AsyncClient) -> None:
    response = await http.post("/actions/delay/validate", json={"params": {"seconds": "5"}})
    assert response.status_code == 200
    assert response.json() == {"valid": True, "params": {"seconds": 5.0}, "errors": []}


async def test_every_bad_param_is_named(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/actions/log/validate", json={"params": {"level": "loud", "colour": "red"}}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    paths = sorted(error["path"] for error in body["errors"])
    assert paths == ["params.colour", "params.level"]
    by_path = {e["path"]: e["message"] for e in body["errors"]}
    assert "not one of the options" in by_path["params.level"]


async def test_a_missing_required_param_is_named(http: httpx.AsyncClient) -> None:
    response = await http.post("/actions/delay/validate", json={"params": {}})

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert {e["path"]: e["message"] for e in body["errors"]} == {"params.seconds": "is required"}


async def test_bounds_are_checked(http: httpx.AsyncClient) -> None:
    body = (await http.post("/actions/delay/validate", json={"params": {"seconds": -1}})).json()
    assert body["valid"] is False
    assert body["errors"][0]["path"] == "params.seconds"
    assert ">= 0" in body["errors"][0]["message"]


async def test_params_of_the_wrong_shape_are_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/actions/delay/validate", json={"params": ["seconds"]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert [f["path"] for f in error["fields"]] == ["params"]
