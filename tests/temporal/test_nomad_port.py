"""A NOMAD action as NOMAD's documentation writes it, installed with pip, run by `conveyor worker`.

tests/plugins/nomad_example is the documentation's example plugin with only its imports and
its entry-point group changed (and the URL its activity calls carried by the input, so it
points at a server on loopback here): an `ActionEntryPoint` subclass whose `load()` imports the
workflow and activities, a Pydantic input inheriting `BaseWorkflowInput`, an activity run with
a retry policy and a timeout. It also has a GPU action whose activities import `torch`, which
is not installed: nothing here may load it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugins import PLUGINS, environment_with, install_plugins

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

NOMAD_EXAMPLE = PLUGINS / "nomad_example"
ACTION = "nomad_example.actions.myaction:my_action"
GPU_ACTION = "nomad_example.actions.gpuaction:gpu_action"
CONVEYOR = str(Path(sys.executable).parent / "conveyor")
WATER = {"PropertyTable": {"Properties": [{"CID": 962, "Title": "Water", "SMILES": "O"}]}}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, built and installed with pip into a directory of its own."""
    return install_plugins(tmp_path_factory.mktemp("nomad") / "site", NOMAD_EXAMPLE)


@pytest.fixture
def pubchem() -> Iterator[str]:
    """A server on loopback answering PubChem's property URL for CID 962; its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            known = self.path == "/rest/pug/compound/cid/962/property/Title,SMILES/JSON"
            body = json.dumps(WATER if known else {"Fault": "not found"}).encode()
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def start_worker(env: dict[str, str], *queues: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`conveyor worker` for `queues`, once it polls; with the stderr lines it printed."""
    command = [CONVEYOR, "worker", "--grace", "1"]
    for queue in queues:
        command += ["--queue", queue]
    worker = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert worker.stderr is not None
    said: list[str] = []
    for line in worker.stderr:
        said.append(line.rstrip())
        if line.startswith("polling:"):
            return worker, said
    worker.wait(10)
    raise AssertionError("the worker exited before polling:\n" + "\n".join(said))


def stop_worker(worker: subprocess.Popen[str]) -> str:
    """Stop the worker as an orchestrator would; the rest of what it said."""
    worker.send_signal(signal.SIGTERM)
    _, rest = worker.communicate(timeout=60)
    assert worker.returncode == 0, rest
    return rest


def test_the_ported_action_runs_by_its_entry_point_id_from_synchronous_code(
    site: Path,
    temporal_server: str,
    pubchem: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_env = {
        "CONVEYOR_BACKEND": "temporal",
        "CONVEYOR_TEMPORAL_ADDRESS": temporal_server,
        "CONVEYOR_TEMPORAL_TASK_QUEUE_PREFIX": f"nomad-{uuid.uuid4().hex[:12]}",
    }
    worker, said = start_worker(environment_with(site) | settings_env, "default", "cpu")
    try:
        # The CPU worker loads the CPU action; the GPU action (torch is missing) is not
        # loaded, so nothing is skipped.
        [loaded] = [line for line in said if line.startswith("actions:")]
        assert "my_action" in loaded and "embed_structure" not in loaded
        assert not [line for line in said if "skipped" in line]

        # This process plays NOMAD's app: settings from the environment, the plugin on the path.
        monkeypatch.syspath_prepend(str(site))
        for name, value in settings_env.items():
            monkeypatch.setenv(name, value)
        from nomad_example.actions.myaction.models import (  # type: ignore[import-not-found]
            ExampleWorkflowInput,
        )

        from conveyor.backends.temporal.nomad.utils import (
            close,
            get_action_result,
            get_action_status,
            start_action,
        )

        try:
            workflow_id = start_action(
                action_name=ACTION,
                data=ExampleWorkflowInput(
                    user_id="NOMAD User ID",
                    upload_id="NOMAD Upload ID",
                    cid=962,  # CID for Water
                    base_url=pubchem,
                ),
            )
            deadline = time.monotonic() + 90
            status = get_action_status(workflow_id)
            while status.name == "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.2)
                status = get_action_status(workflow_id)
            assert status.name == "COMPLETED"
            assert get_action_result(workflow_id) == WATER
        finally:
            close()
    finally:
        rest = stop_worker(worker)
    # The step's activity, which started the workflow, and the workflow's `get_request`.
    assert "stopped: 2 activities run" in rest


def test_listing_and_validating_need_no_queue_extra_and_load_nothing(site: Path) -> None:
    env = environment_with(site)
    done = subprocess.run(
        [sys.executable, "-c", "import torch"], env=env, capture_output=True, check=False
    )
    assert done.returncode != 0, "torch must not be installed for this test to mean anything"
    shown = subprocess.run(
        [CONVEYOR, "actions", "show", GPU_ACTION, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    meta = json.loads(shown.stdout)
    assert meta["type"] == "embed_structure"
    assert meta["queue"] == "gpu"
    assert [p["name"] for p in meta["params"]] == ["upload_id", "user_id", "smiles", "dimensions"]
    listed = subprocess.run(
        [CONVEYOR, "actions", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["failed"] == []
    # Bad data is refused from the statically read input type, naming the fields.
    script = (
        "import asyncio\n"
        "from conveyor import Client\n"
        "from conveyor.errors import ParamValidationError\n"
        "async def main():\n"
        "    async with Client.local(db_path='x.db') as client:\n"
        f"        await client.start_action({GPU_ACTION!r}, {{'user_id': 'u', 'dimensions': 0}})\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except ParamValidationError as exc:\n"
        "    print(exc)\n"
    )
    refused = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=site.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 0, refused.stderr
    for field in ("upload_id", "smiles", "dimensions"):
        assert field in refused.stdout


def test_a_worker_of_the_queue_whose_extra_is_missing_says_so_and_serves_the_rest(
    site: Path, temporal_server: str
) -> None:
    env = environment_with(site) | {
        "CONVEYOR_TEMPORAL_ADDRESS": temporal_server,
        "CONVEYOR_TEMPORAL_TASK_QUEUE_PREFIX": f"nomad-{uuid.uuid4().hex[:12]}",
    }
    env.pop("CONVEYOR_BACKEND", None)
    worker, said = start_worker(env, "gpu")
    stop_worker(worker)
    assert (
        "warning: skipped action embed_structure: ModuleNotFoundError: No module named 'torch'"
        in said
    )
    assert os.linesep.join(said).count("Traceback") == 0
