"""Property-based requests from the OpenAPI document against the live server.

Schemathesis generates valid and invalid requests for every operation of `/openapi.json` and
sends them, with an admin key, to the app under uvicorn on 127.0.0.1. Every answer must be
documented (status, content type, body schema) and none may be a server error.

The budget is small here (`CONVEYOR_FUZZ_EXAMPLES`, default 10 per operation and mode) so the
suite stays fast; `make fuzz-api` runs the same test with a larger one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from conveyor.actions import ActionRegistry
from conveyor.api import Service, create_app
from conveyor.api.keys import create_key
from conveyor.backends.local.store import Store
from conveyor.config import Settings
from tests.api.live import serve_in_thread

# Left out: a request that fits the schema may still be refused with 422 on purpose: a
# pipeline given as text must parse, a run needs exactly one of pipeline_id, pipeline or
# action. Those rules are the server's, answered with the error body, and not expressible as
# JSON Schema that generators would honour.
EXAMPLES = int(os.environ.get("CONVEYOR_FUZZ_EXAMPLES", "10"))

ENDLESS = {"/stream"}
"""Streams that never end by themselves: nothing would read their answer to its end here
(tests/api/test_stream.py covers them)."""


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) of every operation; negative only where there is input to break."""
    # Read from an app that is never started: collection needs the list, not a server.
    document = create_app(Service.create(Settings(db_path=Path("unused.db")))).openapi()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path in ENDLESS:
                continue
            found.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                found.append((method.upper(), path, GenerationMode.NEGATIVE))
    return found


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str]]:
    """The loaded schema, the base URL of a server on its own thread, and an admin token."""
    db = tmp_path_factory.mktemp("fuzz") / "conveyor.db"
    # The key is made on a connection of its own: the server's belongs to its thread.
    store = Store(db).open()
    token = create_key(store, "fuzz", "admin")[1]
    store.close()
    service = Service.create(Settings(db_path=db), registry=ActionRegistry.default())
    with serve_in_thread(create_app(service)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        # Given as configuration, not per call: schemathesis then knows the key is sent, and
        # does not count a request whose key it meant to leave out as wrongly accepted.
        schema.config.update(base_url=url, headers={"Authorization": f"Bearer {token}"})
        yield schema, url, token


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_every_answer_is_documented_and_none_is_a_5xx(
    target: tuple[Any, str, str], method: str, path: str, mode: GenerationMode
) -> None:
    schema, _, _ = target
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    try:
        check()
    except Unsatisfiable:
        # Only a free-form string (a path id) to break: no request can violate the schema.
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no schema-violating request exists for this operation")
