"""An embedded backend on a real SQLite file per test, with the test actions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.backends.local import LocalBackend
from conveyor.client import Client
from conveyor.config import Settings
from conveyor.pipeline import PipelineSpec
from tests.integration.engine import actions
from tests.integration.engine.actions import JOURNAL, Journal

Make = Callable[..., PipelineSpec]


@pytest.fixture
def journal() -> Journal:
    """A fresh journal of what the test actions did."""
    fresh = Journal()
    JOURNAL.__dict__.clear()
    JOURNAL.__dict__.update(fresh.__dict__)
    return JOURNAL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test; adjust before the backend starts."""
    return Settings(db_path=tmp_path / "conveyor.db", queues={"default": 64, "gpu": 1})


@pytest.fixture
async def backend(settings: Settings, journal: Journal) -> AsyncIterator[LocalBackend]:
    """A started embedded backend."""
    async with LocalBackend(actions.registry(), settings) as started:
        yield started


@pytest.fixture
async def client(backend: LocalBackend) -> Client:
    """A client over the backend."""
    return Client(backend)


def pipeline(*steps: dict[str, Any], **fields: Any) -> PipelineSpec:
    """A pipeline of `steps` named `test`."""
    return PipelineSpec.model_validate({"name": "test", "steps": list(steps), **fields})
