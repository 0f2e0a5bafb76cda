"""An engine process for the crash tests: drive runs until none is left unfinished.

    python -m tests.integration.crash.engine_proc --db PATH --log PATH \
        [--start PIPELINE_JSON ...] [--kill-after-commit N] [--timeout SECONDS]

Opens a `LocalBackend` on `--db` with the test actions (which record their calls in `--log`),
starts one run per `--start` (a pipeline document, or ``{"pipeline": ..., "params": ...}``),
then waits until every run in the database is finished and exits 0. With
`--kill-after-commit N` the process sends itself SIGKILL right after the N-th commit made once
the backend is up (commit 1 is the first run's start), like a crash between two commits.

Writes JSON lines to stdout, flushed one by one: ``{"started": RUN_ID, "pipeline": NAME}`` per
run started, ``{"ready": PID}`` once it drives, and at the end
``{"final": {RUN_ID: STATUS, ...}, "commits": N}``. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from conveyor.backends.local import LocalBackend, Store
from conveyor.pipeline.spec import PipelineSpec
from tests.integration.crash.actions import build_registry

EXIT_TIMEOUT = 3
_UNFINISHED = ["pending", "running"]


class KillingStore(Store):
    """A store that counts its commits once armed, and can kill the process at one of them."""

    def __init__(self, path: str | Path, *, kill_after_commit: int | None = None) -> None:
        super().__init__(path)
        self.kill_after_commit = kill_after_commit
        self.armed = False
        self.commits = 0

    def after_commit(self) -> None:
        if not self.armed:
            return
        self.commits += 1
        if self.kill_after_commit is not None and self.commits >= self.kill_after_commit:
            os.kill(os.getpid(), signal.SIGKILL)


def emit(message: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed at once (the process may be killed any moment)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="engine_proc", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, type=Path, help="the SQLite file")
    parser.add_argument("--log", required=True, type=Path, help="the actions' call log")
    parser.add_argument(
        "--start",
        action="append",
        default=[],
        metavar="PIPELINE_JSON",
        help='a pipeline document, or {"pipeline": ..., "params": ...}; repeatable',
    )
    parser.add_argument(
        "--kill-after-commit",
        type=int,
        default=None,
        metavar="N",
        help="SIGKILL this process right after the N-th commit once the backend is up",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help=f"give up (exit {EXIT_TIMEOUT}) if runs are still unfinished after this long",
    )
    return parser.parse_args(argv)


async def drive(args: argparse.Namespace) -> int:
    """Start the runs asked for, then wait until the database has no unfinished run."""
    store = KillingStore(args.db, kill_after_commit=args.kill_after_commit)
    backend = LocalBackend(build_registry(args.log), db_path=args.db, store=store)
    async with backend:
        store.armed = True
        for text in args.start:
            document = json.loads(text)
            if "steps" in document:
                document = {"pipeline": document}
            spec = PipelineSpec.model_validate(document["pipeline"])
            run_id = await backend.start_run(spec, document.get("params"))
            emit({"started": run_id, "pipeline": spec.name})
        # Let the backend's background tasks take their first step before saying it drives.
        await asyncio.sleep(0.01)
        emit({"ready": os.getpid()})
        deadline = time.monotonic() + args.timeout
        while await backend.list_runs(status=_UNFINISHED, limit=1):
            if time.monotonic() > deadline:
                left = await backend.list_runs(status=_UNFINISHED, limit=1000)
                emit({"timeout": [run.run_id for run in left]})
                return EXIT_TIMEOUT
            await asyncio.sleep(0.02)
        runs = await backend.list_runs(limit=100_000)
        emit({"final": {run.run_id: run.status.value for run in runs}, "commits": store.commits})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the engine process; returns its exit code."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    return asyncio.run(drive(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
