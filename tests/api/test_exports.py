"""The public surface of `conveyor.api`, pinned: a change to it is a deliberate one."""

from __future__ import annotations

import conveyor.api
from conveyor.api.app import ROUTERS


def test_exported_names() -> None:
    assert conveyor.api.__all__ == ["AuthConfig", "Service", "create_app"]
    for name in conveyor.api.__all__:
        assert hasattr(conveyor.api, name)


def test_router_modules_are_listed_once() -> None:
    assert ROUTERS[:4] == ("health", "actions", "pipelines", "runs")
    assert len(set(ROUTERS)) == len(ROUTERS)
