"""Operating a database from the CLI, as a user would: each command in its own process.

Which database a command uses, resuming runs after `conveyor run` died, retrying, step logs,
the pipeline catalog, pruning and backups, `--version`, and output that reads at 80 columns.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.acceptance.test_cli_run import (
    EXAMPLES,
    FAILING,
    ROOT,
    Background,
    command,
    conveyor,
    environment,
    eventually,
)

SLEEPER = """\
name: sleeper
steps:
  - id: first
    action: log
    params: {message: before the nap}
  - id: nap
    action: delay
    depends_on: [first]
    params: {seconds: 2}
"""

CHATTY = """\
name: chatty
steps:
  - id: greet
    action: log
    params: {message: "%s"}
"""


def run_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`conveyor ARGS` in `cwd`, with extra environment variables."""
    return subprocess.run(
        [*command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**environment(), **(env or {})},
    )


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_version() -> None:
    from conveyor import __version__

    done = conveyor("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"conveyor {__version__}"


def test_every_command_names_its_database_and_the_default_is_the_one_make_run_serves(
    tmp_path: Path,
) -> None:
    from conveyor.config import DEFAULT_DB_PATH

    makefile = (ROOT / "Makefile").read_text()
    assert f"RUN_DB ?= {DEFAULT_DB_PATH}" in makefile

    made = run_in(tmp_path, "keys", "create", "--owner", "alice", "--scope", "write")
    assert made.returncode == 0, made.stderr
    assert "database: .conveyor/conveyor.db" in made.stderr
    assert (tmp_path / ".conveyor" / "conveyor.db").exists()
    ran = run_in(tmp_path, "run", str(EXAMPLES / "hello.yaml"), "--json")
    assert ran.returncode == 0, ran.stderr
    for args in (
        ("runs", "list", "--json"),
        ("keys", "list"),
        ("runs", "prune", "--older-than", "30d"),
    ):
        done = run_in(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        assert "database: .conveyor/conveyor.db" in done.stderr, args
    other = run_in(tmp_path, "runs", "list", "--json", "--db", "elsewhere.db")
    assert "database: elsewhere.db" in other.stderr
    assert json.loads(other.stdout) == []


def test_runs_resume_drives_a_run_whose_engine_died(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    engine = Background(
        "run", str(write("sleeper.yaml", SLEEPER)), "--db", str(db), stderr=tmp_path / "e.log"
    )
    run_id = engine.run_id()

    def napping() -> bool:
        shown = json.loads(conveyor("runs", "show", run_id, "--db", str(db), "--json").stdout)
        return bool(shown["steps"][1]["status"] == "waiting")

    eventually(napping)
    engine.process.send_signal(signal.SIGKILL)  # A crash: nothing is cleaned up.
    engine.process.communicate(timeout=10)
    shown = json.loads(conveyor("runs", "show", run_id, "--db", str(db), "--json").stdout)
    assert shown["status"] == "running"

    resumed = conveyor("runs", "resume", run_id, "--db", str(db), "--json")

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert f"driving run {run_id}" in resumed.stderr
    nothing = conveyor("runs", "resume", "--db", str(db))
    assert nothing.returncode == 0
    assert "No unfinished runs." in nothing.stdout


def test_runs_resume_is_refused_while_an_engine_holds_the_database(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    engine = Background(
        "run",
        str(write("sleeper.yaml", SLEEPER.replace("2}", "60}"))),
        "--db",
        str(db),
        stderr=tmp_path / "e.log",
    )
    try:
        run_id = engine.run_id()
        refused = conveyor("runs", "resume", run_id, "--db", str(db))
        assert refused.returncode == 1
        assert "in use by another engine" in refused.stderr
        assert "runs show RUN_ID --follow" in refused.stderr
    finally:
        engine.kill()


def test_following_a_run_nothing_drives_says_how_to_resume_it(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    engine = Background(
        "run",
        str(write("sleeper.yaml", SLEEPER.replace("2}", "60}"))),
        "--db",
        str(db),
        stderr=tmp_path / "e.log",
    )
    run_id = engine.run_id()
    engine.process.send_signal(signal.SIGKILL)
    engine.process.communicate(timeout=10)
    follower = Background(
        "runs", "show", run_id, "--follow", "--db", str(db), stderr=tmp_path / "f.log"
    )
    try:
        eventually(lambda: "runs resume" in follower.stderr)
        assert f"runs resume {run_id} --db {db}" in follower.stderr
    finally:
        follower.kill()


def test_runs_resume_refuses_an_unknown_run(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db)).returncode == 0
    done = conveyor("runs", "resume", "nope", "--db", str(db))
    assert done.returncode == 1
    assert "no run with id 'nope'" in done.stderr


def test_runs_retry_starts_a_new_run_of_a_failed_one(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    failed = conveyor("run", str(write("failing.yaml", FAILING)), "--db", str(db), "--json")
    assert failed.returncode == 1
    first = json.loads(failed.stdout)

    retried = conveyor("runs", "retry", first["run_id"], "--db", str(db), "--json")

    assert retried.returncode == 1  # It fails again: the `fail` action always does.
    again = json.loads(retried.stdout)
    assert again["run_id"] != first["run_id"]
    assert again["retry_of"] == first["run_id"]
    assert again["steps"][0]["status"] == "completed"  # Kept from the first run.

    completed = json.loads(
        conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db), "--json").stdout
    )
    refused = conveyor("runs", "retry", completed["run_id"], "--db", str(db))
    assert refused.returncode == 1
    assert "completed; there is nothing to retry" in refused.stderr
    unknown = conveyor("runs", "retry", "nope", "--db", str(db))
    assert unknown.returncode == 1
    assert "no run with id 'nope'" in unknown.stderr


def test_runs_retry_detached_is_started_by_the_next_engine(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    first = json.loads(
        conveyor("run", str(write("f.yaml", FAILING)), "--db", str(db), "--json").stdout
    )
    detached = conveyor("runs", "retry", first["run_id"], "--db", str(db), "--detach")
    assert detached.returncode == 0, detached.stderr
    new_id = detached.stdout.strip()
    shown = json.loads(conveyor("runs", "show", new_id, "--db", str(db), "--json").stdout)
    assert shown["status"] == "pending"
    resumed = conveyor("runs", "resume", "--db", str(db), "--json")
    assert resumed.returncode == 1  # The retry ran, and failed like the first.
    assert [view["run_id"] for view in json.loads(resumed.stdout)] == [new_id]


def test_runs_logs_prints_each_steps_lines_bounded_in_size(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    ran = conveyor("run", str(EXAMPLES / "hello.yaml"), "-p", "who=Ada", "--db", str(db), "--json")
    run_id = json.loads(ran.stdout)["run_id"]

    logs = conveyor("runs", "logs", run_id, "--db", str(db))
    assert logs.returncode == 0, logs.stderr
    assert "greet #1 info" in logs.stdout
    assert "Hello, Ada!" in logs.stdout
    lines = [
        json.loads(line)
        for line in conveyor(
            "runs", "logs", run_id, "--step", "greet", "--db", str(db), "--json"
        ).stdout.splitlines()
    ]
    assert [(line["kind"], line["step_id"], line["data"]["level"]) for line in lines] == [
        ("log", "greet", "info")
    ]
    assert conveyor("runs", "logs", run_id, "--step", "result", "--db", str(db)).stdout == ""
    unknown = conveyor("runs", "logs", run_id, "--step", "nope", "--db", str(db))
    assert unknown.returncode == 1
    assert f"run {run_id} has no step 'nope'" in unknown.stderr

    # A step's log past the bound ends with one marker line.
    long = write("chatty.yaml", CHATTY % ("x" * 300))
    bounded = run_in(
        tmp_path,
        "run",
        str(long),
        "--db",
        str(db),
        "--json",
        env={"CONVEYOR_STEP_LOG_MAX_BYTES": "100"},
    )
    capped = conveyor("runs", "logs", json.loads(bounded.stdout)["run_id"], "--db", str(db))
    assert "[log truncated: this step's log reached 100 bytes" in capped.stdout
    assert "xxxx" not in capped.stdout


def test_runs_logs_follow_prints_lines_until_the_run_ends(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    engine = Background(
        "run", str(write("sleeper.yaml", SLEEPER)), "--db", str(db), stderr=tmp_path / "e.log"
    )
    run_id = engine.run_id()
    followed = conveyor("runs", "logs", run_id, "--follow", "--db", str(db))
    assert followed.returncode == 0, followed.stderr
    assert "before the nap" in followed.stdout
    assert engine.finish()[0] == 0


def test_pipelines_push_pull_list_show_versions_delete_locally(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    pushed = conveyor("pipelines", "push", str(EXAMPLES / "hello.yaml"), "--db", db)
    assert pushed.returncode == 0, pushed.stderr
    assert "hello version 1 stored" in pushed.stderr
    assert (
        "version 2 stored"
        in conveyor("pipelines", "push", str(EXAMPLES / "hello.yaml"), "--db", db).stderr
    )
    listed = json.loads(conveyor("pipelines", "list", "--db", db, "--json").stdout)
    assert [(p["name"], p["latest_version"], p["owner"]) for p in listed] == [("hello", 2, "local")]
    versions = json.loads(conveyor("pipelines", "versions", "hello", "--db", db, "--json").stdout)
    assert [v["version"] for v in versions] == [2, 1]
    shown = conveyor("pipelines", "show", "hello", "--version", "1", "--db", db)
    assert "hello version 1 of 2" in shown.stdout
    pulled = tmp_path / "pulled.yaml"
    assert conveyor("pipelines", "pull", "hello", "-o", str(pulled), "--db", db).returncode == 0
    rerun = conveyor("run", str(pulled), "-p", "who=Bo", "--db", db, "--json")
    assert json.loads(rerun.stdout)["outputs"]["greeting"] == "Hello, Bo!"
    assert conveyor("pipelines", "delete", "hello", "--db", db).returncode == 0
    assert json.loads(conveyor("pipelines", "list", "--db", db, "--json").stdout) == []
    missing = conveyor("pipelines", "show", "hello", "--db", db)
    assert missing.returncode == 1
    assert "no pipeline named 'hello' of owner 'local'" in missing.stderr


def test_pipelines_push_refuses_an_invalid_pipeline_naming_each_problem(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    bad = write("bad.yaml", "name: bad\nsteps:\n  - id: a\n    action: no_such_action\n")
    done = conveyor("pipelines", "push", str(bad), "--db", str(tmp_path / "c.db"))
    assert done.returncode == 1
    assert "the pipeline is invalid" in done.stderr
    assert "steps[0].action" in done.stderr


def test_runs_prune_deletes_finished_runs_past_an_age(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    kept = json.loads(
        conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db), "--json").stdout
    )
    failed = json.loads(
        conveyor("run", str(write("f.yaml", FAILING)), "--db", str(db), "--json").stdout
    )
    time.sleep(1.1)
    dry = conveyor(
        "runs", "prune", "--older-than", "1s", "--status", "failed", "--dry-run", "--db", str(db)
    )
    assert "Would delete 1 run(s)" in dry.stdout, dry.stderr
    pruned = conveyor(
        "runs", "prune", "--older-than", "1s", "--status", "failed", "--db", str(db), "--json"
    )
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["runs"] == 1
    left = [
        run["run_id"]
        for run in json.loads(conveyor("runs", "list", "--db", str(db), "--json").stdout)
    ]
    assert left == [kept["run_id"]]
    with sqlite3.connect(db) as raw:
        assert (
            raw.execute(
                "SELECT count(*) FROM run_events WHERE run_id = ?", (failed["run_id"],)
            ).fetchone()[0]
            == 0
        )
        assert (
            raw.execute(
                "SELECT count(*) FROM units WHERE run_id = ?", (failed["run_id"],)
            ).fetchone()[0]
            == 0
        )
    young = conveyor("runs", "prune", "--older-than", "30d", "--db", str(db), "--json")
    assert json.loads(young.stdout)["runs"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "soon"), "'soon' is not an age like 30d"),
        (("--older-than", "1d", "--status", "running"), "only finished runs are pruned"),
    ],
)
def test_runs_prune_refuses_bad_options(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = conveyor("runs", "prune", *args, "--db", str(tmp_path / "c.db"))
    assert done.returncode == 2
    assert message in done.stderr


def test_db_backup_copies_the_database_consistently(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    run = json.loads(
        conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db), "--json").stdout
    )
    copy = tmp_path / "backup" / "c.db"
    done = conveyor("db", "backup", str(copy), "--db", str(db))
    assert done.returncode == 0, done.stderr
    shown = json.loads(conveyor("runs", "show", run["run_id"], "--db", str(copy), "--json").stdout)
    assert shown["outputs"] == run["outputs"]
    again = conveyor("db", "backup", str(copy), "--db", str(db))
    assert again.returncode == 1
    assert "exists; pass --force" in again.stderr
    assert conveyor("db", "backup", str(copy), "--db", str(db), "--force").returncode == 0
    missing = conveyor("db", "backup", str(tmp_path / "x.db"), "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 1
    assert "there is no database at" in missing.stderr


def test_validate_does_not_warn_that_a_delay_waits_forever() -> None:
    done = conveyor("validate", str(EXAMPLES / "delay.yaml"))
    assert done.returncode == 0
    assert "forever" not in done.stdout + done.stderr


def test_tables_keep_ids_and_statuses_whole_at_80_columns(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = str(tmp_path / "c.db")
    long_error = "the disk is full " * 12
    failing = write("f.yaml", FAILING.replace("the disk is full", long_error.strip()))
    conveyor("run", str(failing), "--db", db)
    conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", db)
    for columns in ("80", "110"):
        env = {**environment(), "COLUMNS": columns}
        listed = subprocess.run(
            [*command(), "runs", "list", "--db", db],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        ).stdout
        assert "completed" in listed and "failed" in listed, listed
        assert "…" not in listed
        assert all(len(line) <= int(columns) for line in listed.splitlines())
        actions = subprocess.run(
            [*command(), "actions", "list"], capture_output=True, text=True, env=env, check=False
        ).stdout
        assert "Description" in actions and "descripti\n" not in actions
        assert "wait_for_event" in actions


def test_make_run_banner_prints_commands_that_work_as_shown(tmp_path: Path) -> None:
    """Hints name the program as it must be typed here: `.venv/bin/conveyor` unless on PATH."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**environment(), "COLUMNS": "60", "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        [*command(), "serve", "--port", str(port), "--db", str(tmp_path / "c.db"), "--local-key"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lines: list[str] = []
        assert server.stdout is not None
        while not any("run --follow" in line for line in lines):
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else ""
            lines.append(line)
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=20)
    text = "".join(lines)
    assert f"listening on http://127.0.0.1:{port}  (OpenAPI: http://127.0.0.1:{port}/docs)" in text
    hint = next(line for line in lines if "run --follow" in line).split()
    program = hint[0]
    assert program != "conveyor"  # Not on this PATH.
    assert os.access(ROOT / program, os.X_OK), program
    shown = subprocess.run(
        [str(ROOT / program), "--version"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0
