"""A registry of the test actions for every pipeline unit test."""

from __future__ import annotations

import pytest

from conveyor.actions import ActionRegistry
from tests.unit.pipeline.actions import definitions


@pytest.fixture
def registry() -> ActionRegistry:
    """A registry holding exactly the test actions."""
    return ActionRegistry(definitions())
