"""The CLI on the configured backend: with `CONVEYOR_BACKEND=temporal`, `conveyor run` and
`conveyor runs ...` work on the Temporal cluster (workers in this test's process), and a
command only the embedded database can answer refuses in one line.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from temporalio.worker import Worker

from conveyor.config import Settings
from tests.acceptance.test_cli_run import command

pytestmark = pytest.mark.temporal

ROOT = Path(__file__).resolve().parents[2]

PIPELINE = """\
name: on-temporal
steps:
  - id: first
    action: set_output
    params:
      values:
        value: "{{ [3, 1, 3] | unique }}"
  - id: second
    action: set_output
    depends_on: [first]
    params:
      values:
        copy: "{{ steps.first.outputs.value }}"
outputs:
  value: "{{ steps.first.outputs.value }}"
"""

UNSTORABLE = """\
name: unstorable
steps:
  - id: first
    action: log
    params:
      message: "{{ 2 ** 64 }}"
"""


def environment(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    env.update(
        {
            "CONVEYOR_BACKEND": "temporal",
            "CONVEYOR_TEMPORAL_ADDRESS": settings.temporal_address,
            "CONVEYOR_TEMPORAL_TASK_QUEUE_PREFIX": settings.temporal_task_queue_prefix,
            # The embedded database is never used: a path that cannot be created proves it.
            "CONVEYOR_DB_PATH": "/nonexistent/conveyor.db",
            "COLUMNS": "250",
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
    )
    return env


async def conveyor(settings: Settings, *args: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop (this process's workers run on it)."""
    process = await asyncio.create_subprocess_exec(
        *command(),
        *args,
        cwd=ROOT,
        env=environment(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_conveyor_run_runs_on_temporal_and_runs_reads_it_there(
    temporal_settings: Settings, temporal_workers: list[Worker], tmp_path: Path
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE, encoding="utf-8")
    code, out, err = await conveyor(temporal_settings, "run", str(path), "--json")
    assert code == 0, err + out
    assert f"on Temporal at {temporal_settings.temporal_address}" in err
    run = json.loads(out)
    assert run["status"] == "completed"
    assert run["outputs"] == {"value": [3, 1]}
    assert run["steps"][1]["params"] == {"values": {"copy": [3, 1]}}

    code, out, err = await conveyor(temporal_settings, "runs", "show", run["run_id"], "--json")
    assert code == 0, err
    assert json.loads(out)["outputs"] == {"value": [3, 1]}
    code, out, err = await conveyor(temporal_settings, "runs", "list", "--json")
    assert code == 0, err
    assert run["run_id"] in [listed["run_id"] for listed in json.loads(out)]
    code, out, err = await conveyor(temporal_settings, "runs", "show", "no-such-run")
    assert code == 1
    assert (
        f"no run with id 'no-such-run' on Temporal at {temporal_settings.temporal_address}" in err
    )


async def test_a_first_step_that_cannot_store_its_params_fails_the_run_on_temporal(
    temporal_settings: Settings, temporal_workers: list[Worker], tmp_path: Path
) -> None:
    path = tmp_path / "unstorable.yaml"
    path.write_text(UNSTORABLE, encoding="utf-8")
    code, out, err = await conveyor(temporal_settings, "run", str(path), "--json")
    assert code == 1, err
    assert "Traceback" not in err
    run = json.loads(out)
    assert run["status"] == "failed"
    assert run["error"] == (
        "step 'first' failed: params.message: the integer 18446744073709551616 is outside "
        "the 64-bit range a run can store"
    )


async def test_commands_only_the_embedded_database_answers_refuse_in_one_line(
    temporal_settings: Settings,
) -> None:
    code, out, err = await conveyor(temporal_settings, "events", "list")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "error: `conveyor events list` reads the embedded database, and CONVEYOR_BACKEND is "
        "temporal: Temporal keeps events in its mailbox workflows; see them with `temporal "
        "workflow list`"
    ]


async def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE, encoding="utf-8")
    settings = Settings(backend="temporal", temporal_address="127.0.0.1:1")
    code, _, err = await conveyor(settings, "run", str(path))
    assert code == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: cannot reach Temporal at 127.0.0.1:1 (CONVEYOR_BACKEND")
