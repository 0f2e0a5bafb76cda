"""Fixtures of the HTTP service tests: the real app under uvicorn on 127.0.0.1.

- `settings`: the service's settings, on a fresh SQLite file (override it in a module to
  change a setting);
- `service`: the `Service` (not started: the app's lifespan starts it);
- `server_url`: the app served on this test's event loop at a free port;
- `make_key(owner, scope)`: a new API key's token;
- `admin_token`, `http`: an admin key, and an `httpx.AsyncClient` that sends it;
- `anon`: a client that sends no key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from conveyor.actions import ActionRegistry
from conveyor.api import Service, create_app
from conveyor.api.keys import Scope, create_key
from conveyor.config import Settings
from tests.api.live import serve

EVENTS_TOKEN = "test-events-token"
"""The `Settings.events_token` of the default `settings`."""

MakeKey = Callable[[str, Scope], str]


@pytest.fixture(scope="session")
def action_registry() -> ActionRegistry:
    """The installed actions, discovered once (tests only read the registry)."""
    return ActionRegistry.default()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh database, with a known events token."""
    return Settings(db_path=tmp_path / "conveyor.db", events_token=SecretStr(EVENTS_TOKEN))


@pytest.fixture
def service(settings: Settings, action_registry: ActionRegistry) -> Service:
    """The service under test, with auth on."""
    return Service.create(settings, registry=action_registry)


@pytest.fixture
async def server_url(service: Service) -> AsyncIterator[str]:
    """The base URL of the app, served on this test's loop."""
    async with serve(create_app(service)) as url:
        yield url


@pytest.fixture
def make_key(service: Service, server_url: str) -> MakeKey:
    """Make an API key; returns its token."""

    def make(owner: str, scope: Scope) -> str:
        return create_key(service.store, owner, scope)[1]

    return make


@pytest.fixture
def admin_token(make_key: MakeKey) -> str:
    """A token of an admin key (owner `admin`)."""
    return make_key("admin", "admin")


@pytest.fixture
async def http(server_url: str, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the server that sends the admin key."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
async def anon(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the server that sends no key."""
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client
