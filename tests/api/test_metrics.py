"""Prometheus metrics: runs by status, step durations, events received, queue depths."""

from __future__ import annotations

import httpx

from conveyor.api import Service
from tests.api import docs


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in the metrics:\n{text}")


async def test_metrics_count_runs_steps_and_events(
    http: httpx.AsyncClient, anon: httpx.AsyncClient, service: Service
) -> None:
    for document in (docs.greeting(), docs.failing()):
        run = (await http.post("/runs", json={"pipeline": document})).json()
        await service.backend.wait(run["run_id"], timeout=10)
    service.metrics.count_event("routed")
    service.metrics.count_event("unroutable")
    service.metrics.count_event("unroutable")
    response = await anon.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _value(text, 'conveyor_runs{status="completed"}') == 1
    assert _value(text, 'conveyor_runs{status="failed"}') == 1
    assert _value(text, 'conveyor_step_duration_seconds_count{status="completed"}') == 3
    assert _value(text, 'conveyor_step_duration_seconds_count{status="failed"}') == 1
    assert _value(text, 'conveyor_events_received_total{status="routed"}') == 1
    assert _value(text, 'conveyor_events_received_total{status="unroutable"}') == 2
    assert _value(text, 'conveyor_queue_running{queue="default"}') == 0
    assert _value(text, 'conveyor_queue_waiting{queue="default"}') == 0
    assert "# TYPE conveyor_step_duration_seconds histogram" in text
    assert "# TYPE conveyor_events_stored gauge" in text
