"""An `@action` field typed `int` is an integer param: a fraction is refused before a run starts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel, Field

from conveyor.actions import ActionRegistry, action
from conveyor.api import Service, create_app
from conveyor.api.keys import create_key
from conveyor.config import Settings
from tests.api.live import client_for, serve


class RepeatInput(BaseModel):
    word: str
    times: int = Field(ge=1, le=10, description="How many times")


class RepeatOutput(BaseModel):
    text: str


@action(type="repeat_word", category="Examples")
async def repeat_word(data: RepeatInput) -> RepeatOutput:
    """Repeat a word."""
    return RepeatOutput(text=" ".join([data.word] * data.times))


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    registry = ActionRegistry.default()
    registry.add(repeat_word)
    service = Service.create(settings, registry=registry)
    async with serve(create_app(service)) as url:
        token = create_key(service.store, "ada", "write")[1]
        async with client_for(url, token) as client:
            yield client


async def test_the_catalog_publishes_an_int_field_as_integer(http: httpx.AsyncClient) -> None:
    meta = (await http.get("/actions/repeat_word")).json()
    times = next(param for param in meta["params"] if param["name"] == "times")
    assert times["type"] == "integer"
    assert times["validation"]["min"] == 1


async def test_validate_refuses_a_fraction_for_an_integer(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/actions/repeat_word/validate", json={"params": {"word": "hi", "times": 2.5}}
    )
    assert response.status_code == 200
    assert response.json()["errors"] == [
        {"path": "params.times", "message": "must be an integer, got 2.5"}
    ]
    whole = await http.post(
        "/actions/repeat_word/validate", json={"params": {"word": "hi", "times": "3"}}
    )
    assert whole.json()["valid"] is True
    assert whole.json()["params"]["times"] == 3


async def test_a_run_with_a_fraction_for_an_integer_is_refused(http: httpx.AsyncClient) -> None:
    one_action = await http.post(
        "/runs", json={"action": "repeat_word", "params": {"word": "hi", "times": 2.5}}
    )
    assert one_action.status_code == 422, one_action.text
    assert one_action.json()["error"]["fields"] == [
        {"path": "params.times", "message": "must be an integer, got 2.5"}
    ]
    pipeline = {
        "name": "repeat",
        "steps": [{"id": "r", "action": "repeat_word", "params": {"word": "hi", "times": 2.5}}],
    }
    inline = await http.post("/runs", json={"pipeline": pipeline})
    assert inline.status_code == 422, inline.text
    assert inline.json()["error"]["fields"] == [
        {"path": "steps[0].params.times", "message": "must be an integer, got 2.5"}
    ]
    assert (await http.get("/runs")).json()["total"] == 0
