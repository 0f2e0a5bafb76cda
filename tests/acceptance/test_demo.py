"""`make run`: the demo runs an event-driven pipeline against a real service and succeeds."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from conveyor.demo.service import JobService
from tests.acceptance.test_cli_run import ROOT, environment


def test_the_demo_runs_the_event_driven_example_to_completion(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"

    done = subprocess.run(
        [sys.executable, "-m", "conveyor.demo", "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment(),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Job service listening on http://127.0.0.1:" in done.stdout
    assert "COMPLETED" in done.stdout
    assert '"message": "resize-images done"' in done.stdout
    assert "completion event arrived" in done.stdout
    assert "conveyor runs show" in done.stdout and str(db) in done.stdout
    assert db.exists()


def test_the_service_answers_at_once_then_publishes_progress_and_results() -> None:
    published: list[dict[str, Any]] = []
    both = threading.Event()

    def publish(event: dict[str, Any]) -> None:
        published.append(event)
        if len(published) == 2:
            both.set()

    with JobService(publish, delay_seconds=0.1) as service:
        answer = httpx.post(f"{service.url}/jobs", json={"job": "x", "callback_topic": "t"})
        assert answer.status_code == 202
        workflow_id = answer.json()["workflow_id"]
        assert both.wait(10)
        missing = httpx.post(f"{service.url}/nothing", json={})

    assert missing.status_code == 404
    assert [event["workflow_id"] for event in published] == [workflow_id, workflow_id]
    assert published[0]["progress"] == 50
    assert published[1]["payload"]["event"] == "results"
    assert published[1]["payload"]["content"]["status"] == "COMPLETED"
    assert service.jobs[workflow_id].request == {"job": "x", "callback_topic": "t"}
