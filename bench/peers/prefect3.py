"""Prefect 3 with its own server on a free port and a SQLite database: seq and par workloads.

Run by the bench with Prefect's own virtualenv: `python prefect3.py --workload NAME ...`.
Steps are `@task` no-ops called (sequential) or `.submit()`-ed (parallel) inside one `@flow`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, free_port, not_offered, now, parser, repeat

NOT_OFFERED = (
    "not offered: Prefect has no step that waits for an external event inside a running flow; "
    "its nearest equivalent, pause_flow_run/suspend_flow_run + resume_flow_run, either keeps "
    "a process blocked per paused run or needs a deployment and a worker to restart the flow, "
    "and finds the resume by polling the API (poll_interval, 10 s by default)"
)


PREFECT = (sys.executable, "-m", "prefect")


def start_server(workdir: Path) -> subprocess.Popen[bytes]:
    """`prefect server start` on a free loopback port, its database a SQLite file in workdir."""
    port = free_port()
    env = {
        "PREFECT_HOME": str(workdir),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{workdir}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    os.environ.update(env)
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-services"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited; see {workdir / 'server.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("prefect server did not answer within 180 s")


def main() -> None:
    args = parser("prefect3").parse_args()
    sizes = {"seq100": (100, False, 1000), "par100": (100, True, 1000), "par1000": (1000, True, 1)}
    if args.workload not in sizes:
        emit(not_offered(NOT_OFFERED))
        return
    steps, parallel, unit = sizes[args.workload]
    server = start_server(args.workdir)
    try:
        from prefect import flow, task

        @task
        def noop() -> None:
            """Does nothing."""

        @flow
        def sequential(count: int) -> None:
            for _ in range(count):
                noop()

        @flow
        def fan(count: int) -> None:
            futures = [noop.submit() for _ in range(count)]
            for future in futures:
                future.result()

        chosen: Any = fan if parallel else sequential

        def once() -> dict[str, float]:
            started = now()
            chosen(steps)
            return {"total": (now() - started) * unit}

        chosen(steps)  # Warm-up: imports, flow and task registration.
        emit({"samples": repeat(args.repeat, once)})
    finally:
        server.terminate()
        server.wait(30)
    # Without its server, Prefect's client would spend minutes failing to flush the events of
    # thousands of task runs at exit; the figures are out already.
    os._exit(0)


if __name__ == "__main__":
    main()
