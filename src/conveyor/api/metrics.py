"""Prometheus metrics of one service, served as text at `/metrics`.

Each service has its own `CollectorRegistry` rather than prometheus-client's process-wide
default, so two services in one process (tests, embedding) never count into each other.

Counts that the database already holds (runs by status, stored events by status) are read
when scraped, so they are right after a restart and include what other processes did. What
only passes through this process is counted as it happens: step durations (from the engine's
committed timeline entries), events received over HTTP (the events route calls
`count_event`), and queue depths (read from the engine when scraped).

On Temporal only the events received are served: runs live on the cluster, not in the
database, step durations would need the engine's commits, and queues are the workers'. Those
metrics are left out rather than served as zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from conveyor.actions import StepStatus
from conveyor.backends.local import LocalBackend
from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store
from conveyor.backends.local.timeline import Entry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_STEP_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
_MAX_TRACKED = 100_000
"""Steps whose start is remembered at once; past this the oldest are forgotten (no leak)."""


class Metrics:
    """The service's metrics."""

    def __init__(self, store: Store, backend: LocalBackend | None = None) -> None:
        """Metrics of a service whose own database is `store`; `backend` is the embedded
        engine, None on Temporal (where only the events received are served)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.step_duration = Histogram(
            "conveyor_step_duration_seconds",
            "Time from a step (or fan-out item) starting to run to its end, by final status.",
            ["status"],
            buckets=_STEP_BUCKETS,
            registry=self.registry if backend is not None else None,
        )
        self.events = Counter(
            "conveyor_events_received",
            "Events received over HTTP, by how they were routed.",
            ["status"],
            registry=self.registry,
        )
        if backend is not None:
            self.registry.register(_StoreCollector(backend, store))
        self._event_counters: dict[str, Counter] = {}
        self._started: dict[tuple[str, str | None, int | None], float] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._backend = backend

    def start(self) -> None:
        """Follow the engine's timeline for step durations."""
        if self._unsubscribe is None and self._backend is not None:
            self._unsubscribe = self._backend.subscribe_entries(self._on_entries)

    def stop(self) -> None:
        """Stop following the engine."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def count_event(self, status: str) -> None:
        """Count an event received over HTTP, by its route status (`routed`, `unroutable`...)."""
        # The labelled child is kept: `labels()` takes a lock and builds a key, on every event.
        counter = self._event_counters.get(status)
        if counter is None:
            counter = self._event_counters[status] = self.events.labels(status=status)
        counter.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def _on_entries(self, run_id: str, at: float, entries: list[Entry]) -> None:
        for kind, step_id, index, data in entries:
            status = data.get("status")
            if kind != "step" or status is None:
                continue
            key = (run_id, step_id, index)
            if status == StepStatus.RUNNING:
                if len(self._started) >= _MAX_TRACKED:
                    self._started.pop(next(iter(self._started)))
                self._started.setdefault(key, at)
            elif StepStatus(status).is_terminal:
                started = self._started.pop(key, None)
                if started is not None:
                    self.step_duration.labels(status=status).observe(max(0.0, at - started))


class _StoreCollector(Collector):
    """Gauges read when scraped: runs and events by status, queue depths."""

    def __init__(self, backend: LocalBackend, store: Store) -> None:
        self._backend = backend
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily(
            "conveyor_runs", "Runs in the database, by status.", None, ["status"]
        )
        events = GaugeMetricFamily(
            "conveyor_events_stored", "Events in the database, by status.", None, ["status"]
        )
        try:
            for status, count in self._store.db.execute(Q["runs_by_status"]):
                runs.add_metric([status], count)
            for status, count in self._store.db.execute(Q["events_by_status"]):
                events.add_metric([status], count)
        except RuntimeError:
            pass  # The store is closed (the service stops); scrape what is left.
        yield runs
        yield events
        running = GaugeMetricFamily(
            "conveyor_queue_running", "Steps running now, by queue.", None, ["queue"]
        )
        waiting = GaugeMetricFamily(
            "conveyor_queue_waiting", "Steps waiting for a slot, by queue.", None, ["queue"]
        )
        for queue, (busy, queued) in sorted(self._backend.queue_depths().items()):
            running.add_metric([queue], busy)
            waiting.add_metric([queue], queued)
        yield running
        yield waiting
