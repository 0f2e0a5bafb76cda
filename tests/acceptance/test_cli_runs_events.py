"""`conveyor runs ...` and `conveyor events ...` against runs another process drives.

A `conveyor run` in the background is the engine; these commands reach it through the database:
a cancel or an event is handed to its inbox, and takes effect in that process.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.test_cli_run import (
    EXAMPLES,
    FAILING,
    WAITING,
    Background,
    conveyor,
    waiting,
)

# The fixtures, re-exported so pytest finds them in this module too.
from tests.acceptance.test_cli_run import db as db
from tests.acceptance.test_cli_run import waiter as waiter
from tests.acceptance.test_cli_run import write as write


def show(run_id: str, db: Path) -> dict[str, object]:
    done = conveyor("runs", "show", run_id, "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    shown: dict[str, object] = json.loads(done.stdout)
    return shown


def test_runs_list_filters_show_prints_steps_outputs_and_error_and_unknown_ids_exit_1(
    write: Callable[[str, str], Path], db: Path
) -> None:
    hello = json.loads(
        conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db), "--json").stdout
    )
    failed = json.loads(
        conveyor("run", str(write("failing.yaml", FAILING)), "--db", str(db), "--json").stdout
    )

    listed = conveyor("runs", "list", "--db", str(db))
    assert listed.returncode == 0
    assert hello["run_id"] in listed.stdout and failed["run_id"] in listed.stdout
    only_failed = json.loads(
        conveyor("runs", "list", "-s", "failed", "--db", str(db), "--json").stdout
    )
    assert [run["run_id"] for run in only_failed] == [failed["run_id"]]
    by_name = json.loads(
        conveyor("runs", "list", "--pipeline", "hello", "--db", str(db), "--json").stdout
    )
    assert [run["run_id"] for run in by_name] == [hello["run_id"]]

    shown = conveyor("runs", "show", failed["run_id"], "--db", str(db))
    assert shown.returncode == 0
    assert "boom" in shown.stdout and "the disk is full" in shown.stdout
    greeted = conveyor("runs", "show", hello["run_id"], "--db", str(db))
    assert '"greeting": "Hello, world!"' in greeted.stdout

    for args in (["show", "nope"], ["cancel", "nope"]):
        unknown = conveyor("runs", *args, "--db", str(db))
        assert unknown.returncode == 1
        assert "no run with id 'nope'" in unknown.stderr


def test_a_bad_status_filter_exits_2(db: Path) -> None:
    done = conveyor("runs", "list", "--status", "sleeping", "--db", str(db))

    assert done.returncode == 2
    assert "'sleeping' is not one of" in done.stderr


def test_cancel_hands_the_request_to_the_engine_and_the_run_ends_cancelled(
    waiter: Background, db: Path
) -> None:
    run_id = waiting(waiter, db)

    done = conveyor("runs", "cancel", run_id, "--reason", "not needed", "--db", str(db))

    assert done.returncode == 0, done.stderr
    assert f"handed to the engine (pid {waiter.pid})" in done.stdout
    assert f"Run {run_id} is cancelled." in done.stdout
    status, stdout = waiter.finish()
    assert status == 1
    assert "CANCELLED" in stdout
    shown = show(run_id, db)
    assert shown["status"] == "cancelled"
    again = conveyor("runs", "cancel", run_id, "--db", str(db))
    assert again.returncode == 0
    assert "already ended (cancelled)" in again.stdout


def test_an_event_sent_while_the_engine_runs_completes_the_waiting_run(
    waiter: Background, db: Path
) -> None:
    run_id = waiting(waiter, db)

    sent = conveyor(
        "events", "send", "--correlation-id", "job-7", "--data", '{"status": "COMPLETED", "n": 7}',
        "--id", "evt-1", "--db", str(db),
    )  # fmt: skip

    assert sent.returncode == 0, sent.stderr
    assert f"handed to the engine (pid {waiter.pid})" in sent.stdout
    status, stdout = waiter.finish()
    assert status == 0, waiter.stderr
    assert '"n": 7' in stdout
    assert show(run_id, db)["outputs"] == {
        "event": {"status": "COMPLETED", "n": 7, "workflow_id": "job-7", "id": "evt-1"}
    }
    events = json.loads(conveyor("events", "list", "--db", str(db), "--json").stdout)
    assert [(e["id"], e["correlation_id"], e["status"]) for e in events] == [
        ("evt-1", "job-7", "routed")
    ]


def test_an_event_sent_before_anyone_waits_is_kept_and_delivered_later(
    write: Callable[[str, str], Path], db: Path
) -> None:
    sent = conveyor(
        "events", "send", "-c", "early-1", "--data", '{"status": "COMPLETED"}', "--db", str(db)
    )
    assert sent.returncode == 0, sent.stderr
    assert "pending" in sent.stdout
    pending = json.loads(
        conveyor("events", "list", "-s", "pending", "--db", str(db), "--json").stdout
    )
    assert [event["correlation_id"] for event in pending] == ["early-1"]

    path = write("waiter.yaml", WAITING)
    done = conveyor(
        "run", str(path), "-p", "correlation_id=early-1", "--db", str(db), "--json",
        "--timeout", "30",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["event"]["status"] == "COMPLETED"
    left = conveyor("events", "list", "-s", "pending", "--db", str(db), "--json")
    assert json.loads(left.stdout) == []


def test_invalid_event_data_exits_2_naming_the_option(db: Path) -> None:
    for data in ("{not json", "[1, 2]"):
        done = conveyor("events", "send", "-c", "x", "--data", data, "--db", str(db))
        assert done.returncode == 2
        assert "--data" in done.stderr


def test_without_an_engine_events_are_stored_and_a_cancel_is_recorded_directly(
    waiter: Background, db: Path
) -> None:
    run_id = waiting(waiter, db)
    # The engine dies without stopping: the run stays waiting in the database, no one drives it.
    waiter.process.send_signal(signal.SIGKILL)
    waiter.finish()

    sent = conveyor("events", "send", "-c", "job-7", "--data", '{"progress": 10}', "--db", str(db))
    assert sent.returncode == 0, sent.stderr
    assert "routed to 1 waiting step(s); applied when an engine runs" in sent.stdout

    done = conveyor("runs", "cancel", run_id, "--db", str(db))

    assert done.returncode == 0, done.stderr
    assert "handed" not in done.stdout
    assert f"Run {run_id} is cancelled." in done.stdout
    assert show(run_id, db)["status"] == "cancelled"
