"""The demo behind `make run`: an event-driven pipeline against a real external service.

It starts a job service on 127.0.0.1 (`conveyor.demo.service`), then runs
``examples/event_driven.yaml`` exactly as ``conveyor run`` would, live view included: the
``submit`` step POSTs a job and gets a ``workflow_id`` back, the ``wait`` step waits for the
service's events with that id (a progress event, then the results), and ``report`` logs the
outcome. The service publishes its events with ``conveyor events send``, a separate process,
so they reach the engine the way any outside event does.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import datetime
from pathlib import Path

from rich.text import Text

from conveyor.cli.commands_run import EXIT_FAILED, RunOutcome, execute
from conveyor.cli.common import command_name, configure_logging, error, settings_for, stdout
from conveyor.demo.service import Job, JobService, cli_publisher

__all__ = ["main"]

PIPELINE = "examples/event_driven.yaml"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 when the run completed)."""
    parser = argparse.ArgumentParser(
        prog="python -m conveyor.demo",
        description="Run an event-driven pipeline against a small job service on 127.0.0.1.",
    )
    parser.add_argument(
        "--db", type=Path, help="The database to use (default: a new one in a temp dir)."
    )
    parser.add_argument(
        "--delay", type=float, default=1.0, help="How long the service's job takes (seconds)."
    )
    parser.add_argument("--pipeline", type=Path, help=f"The pipeline to run (default: {PIPELINE}).")
    args = parser.parse_args(argv)

    pipeline = args.pipeline or _find_pipeline()
    if pipeline is None:
        error(f"cannot find {PIPELINE}: run from the repository, or pass --pipeline")
        return EXIT_FAILED
    db = args.db or Path(tempfile.mkdtemp(prefix="conveyor-demo-")) / "demo.db"
    settings = settings_for(db)
    # The service listens on loopback, which actions may not reach unless allowed: this is
    # what CONVEYOR_ALLOWED_HOSTS='["127.0.0.1"]' does, for this engine only.
    if "127.0.0.1" not in settings.allowed_hosts:
        settings = settings.model_copy(
            update={"allowed_hosts": [*settings.allowed_hosts, "127.0.0.1"]}
        )
    configure_logging()

    with JobService(cli_publisher(db), delay_seconds=args.delay) as service:
        stdout.print(Text.assemble(("Job service ", "bold"), f"listening on {service.url}"))
        stdout.print(Text.assemble(("Database    ", "bold"), str(db)))
        stdout.print(Text.assemble(("Pipeline    ", "bold"), str(pipeline)))
        stdout.print()
        outcome = asyncio.run(execute(pipeline, {"service_url": service.url}, settings))
    _explain(outcome, list(service.jobs.values()), db)
    return outcome.exit_code


def _find_pipeline() -> Path | None:
    # The example lives in the repository next to `src/`, not in the installed package.
    here = Path(__file__).resolve()
    for candidate in (Path.cwd() / PIPELINE, here.parents[3] / PIPELINE):
        if candidate.is_file():
            return candidate
    return None


def _explain(outcome: RunOutcome, jobs: list[Job], db: Path) -> None:
    """Say how the completion event met the waiting step, and how to look at the run again."""
    view = outcome.view
    if view is None:
        return
    stdout.print()
    for job in jobs:
        if job.error:
            error(f"the service could not publish its events: {job.error}")
    completed = [at for job in jobs for at, event in job.published if "payload" in event]
    try:
        wait = view.step("wait")
    except KeyError:
        wait = None
    if completed and wait is not None and wait.started_at is not None:
        published = datetime.fromtimestamp(completed[0], tz=wait.started_at.tzinfo)
        if published < wait.started_at:
            how = (
                "The completion event arrived before the wait step started waiting: the engine "
                "kept it and delivered it the moment the step began to wait."
            )
        else:
            how = (
                "The completion event arrived while the wait step was waiting. Had it come "
                "first, the engine would have kept it and delivered it when the step began to "
                "wait: early events are not lost."
            )
        stdout.print(how)
    stdout.print(
        f"Look at the run again: {command_name()} runs show {view.run_id} --db {db}",
        soft_wrap=True,
    )
