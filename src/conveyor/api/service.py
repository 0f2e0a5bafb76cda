"""What the HTTP app serves: the backend, its settings and the service's own storage.

One `Service` a process. It starts the backend (the embedded engine, or a client of a Temporal
cluster: `Settings.backend`), opens its own connection to the SQLite file for the service's
tables (pipeline catalog, API keys; on the embedded backend the engine's connection stays the
engine's), and runs the start and stop hooks other parts of the service register: anything
with a background task (publishers, streams) adds itself to `on_start`/`on_stop` instead of
being known here. Routes reach the backend through `Service.engine` (`conveyor.api.engine`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from conveyor.actions import ActionRegistry
from conveyor.api.engine import LocalEngine, ServiceBackend, TemporalEngine
from conveyor.api.keys import hash_secret
from conveyor.api.metrics import Metrics
from conveyor.api.sse import StreamGate
from conveyor.backends.local import LocalBackend
from conveyor.backends.local.runtime import LOOP_BUSY_TIMEOUT
from conveyor.backends.local.store import Store
from conveyor.config import Settings
from conveyor.pipeline.template_limits import configure_template_limits

if TYPE_CHECKING:
    from conveyor.backends.temporal.backend import TemporalBackend
    from conveyor.publishing import Dispatcher

log = structlog.get_logger("conveyor.api")

Hook = Callable[["Service"], Awaitable[None]]
"""A start or stop callable: given the service, awaited in order."""


@dataclass
class AuthConfig:
    """How requests are authenticated.

    Attributes:
        enabled: False in insecure local mode: every request acts as an admin of owner
            ``local``. Only for a service that listens on loopback.
        events_token_hash: The hash of `Settings.events_token`, which the events endpoint
            accepts besides API keys.
    """

    enabled: bool = True
    events_token_hash: str | None = None

    def events_token_matches(self, token: str) -> bool:
        """Whether `token` is the configured events token (compared in constant time)."""
        import hmac

        if self.events_token_hash is None:
            return False
        return hmac.compare_digest(hash_secret(token), self.events_token_hash)


@dataclass
class Service:
    """The backend and everything the routes share.

    Attributes:
        backend: The embedded engine, or the Temporal backend.
        settings: The settings it runs with.
        registry: The actions (the engine's registry).
        store: The service's own connection to the engine's database.
        auth: How requests are authenticated.
        metrics: The Prometheus metrics.
        on_start: Awaited in order after the engine and store are up.
        on_stop: Awaited in reverse order before they go down.
        publishing: What publishes run lifecycles (`conveyor.api.publishing.install`).
        engine: What the routes use of the backend.
    """

    backend: LocalBackend | TemporalBackend
    settings: Settings
    registry: ActionRegistry
    store: Store
    auth: AuthConfig
    metrics: Metrics
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    started: bool = False
    publishing: Dispatcher | None = None
    """Publishes run lifecycles to callback topics and webhooks; None when not installed."""
    streams: StreamGate = field(default_factory=StreamGate)
    """Closed when the server begins to stop, which ends the live (SSE) streams."""
    engine: ServiceBackend = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.backend, LocalBackend):
            self.engine = LocalEngine(self.backend, self.store)
        else:
            self.engine = TemporalEngine(self.backend)

    @property
    def local(self) -> LocalBackend | None:
        """The embedded engine, or None on Temporal."""
        return self.backend if isinstance(self.backend, LocalBackend) else None

    @classmethod
    def create(
        cls,
        settings: Settings | None = None,
        *,
        registry: ActionRegistry | None = None,
        db_path: str | Path | None = None,
        auth_enabled: bool = True,
        backend: LocalBackend | TemporalBackend | None = None,
    ) -> Service:
        """A service over a new backend of `settings.backend` (nothing runs until `start()`).

        Args:
            settings: Settings; read from the environment when None.
            registry: The actions; discovered from entry points when None.
            db_path: The SQLite file; `settings.db_path` when None.
            auth_enabled: False for insecure local mode (no API keys).
            backend: A backend to serve instead of making one.
        """
        settings = settings or Settings()
        if db_path is not None:
            settings = settings.model_copy(update={"db_path": Path(db_path)})
        configure_template_limits(settings.template_limits())
        if backend is None:
            backend = _backend_of(registry, settings)
        token = settings.events_token
        auth = AuthConfig(
            enabled=auth_enabled,
            events_token_hash=hash_secret(token.get_secret_value()) if token else None,
        )
        local = backend if isinstance(backend, LocalBackend) else None
        store = Store(
            local.store.path if local is not None else backend.settings.db_path,
            busy_timeout=LOOP_BUSY_TIMEOUT,
        )
        service = cls(
            backend=backend,
            settings=backend.settings,
            registry=backend.registry,
            store=store,
            auth=auth,
            metrics=Metrics(store, local),
        )
        if local is not None:
            # Publishing follows the engine's commits; Temporal has none to follow.
            from conveyor.api.publishing import install  # It builds on this module.

            install(service)
        return service

    async def start(self) -> None:
        """Start the backend, open the store, then run the `on_start` hooks."""
        if self.started:
            return
        await self.engine.start()
        self.store.open()
        self.metrics.start()
        self.started = True
        for hook in self.on_start:
            await hook(self)

    async def stop(self) -> None:
        """Run the `on_stop` hooks (last registered first), then stop the store and engine."""
        if not self.started:
            return
        for hook in reversed(self.on_stop):
            try:
                await hook(self)
            except Exception:  # One failing hook must not keep the engine up.
                log.exception("stop_hook_failed", hook=getattr(hook, "__name__", repr(hook)))
        self.metrics.stop()
        self.started = False
        self.store.close()
        await self.engine.stop()


def _backend_of(
    registry: ActionRegistry | None, settings: Settings
) -> LocalBackend | TemporalBackend:
    if settings.backend == "temporal":
        from conveyor.backends.temporal.backend import TemporalBackend

        return TemporalBackend(registry, settings)
    return LocalBackend(registry, settings)
