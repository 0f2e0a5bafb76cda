"""`conveyor run`, driven as a user would: the real console script, a database per test.

Exit status is the contract scripts rely on: 0 completed, 1 failed (or invalid pipeline, or
busy database, or timed out), 2 bad parameters, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

WAITING = """\
name: waiter
parameters:
  - name: correlation_id
    type: string
    required: true
steps:
  - id: wait
    action: wait_for_event
    params:
      correlation_id: "{{ params.correlation_id }}"
      timeout_seconds: 120
outputs:
  event: "{{ steps.wait.outputs.event }}"
"""

FAILING = """\
name: failing
steps:
  - id: first
    action: log
    params:
      message: about to fail
  - id: boom
    action: fail
    depends_on: [first]
    params:
      message: the disk is full
"""

INVALID = """\
name: invalid
steps:
  - id: greet
    action: no_such_action
  - id: report
    action: log
    depends_on: [missing]
    params:
      message: hi
"""

TYPED = """\
name: typed
parameters:
  - name: count
    type: integer
    required: true
  - name: label
    type: string
    required: true
steps:
  - id: show
    action: log
    params:
      message: "{{ params.label }} x{{ params.count }}"
"""


def command() -> list[str]:
    script = Path(sys.executable).with_name("conveyor")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from conveyor.cli import main; main()"]


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    # Wide, uncoloured output: assertions read words, not terminal layout.
    env.update({"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    return env


def conveyor(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment(),
    )


class Background:
    """A `conveyor` command running in another process; its stderr goes to a file."""

    def __init__(self, *args: str, stderr: Path) -> None:
        self.stderr_path = stderr
        with stderr.open("w") as sink:
            self.process = subprocess.Popen(
                [*command(), *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=sink,
                text=True,
                env=environment(),
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def run_id(self) -> str:
        """The id `conveyor run` reports on stderr when the run has started."""

        def started() -> str | None:
            found = re.search(r"run (\w+) started", self.stderr)
            if found is None and self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode}: {self.stderr}")
            return found.group(1) if found else None

        return str(eventually(started))

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the process to end; its exit status and stdout."""
        stdout, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, stdout

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(0.2)


def waiting(engine: Background, db: Path) -> str:
    """The id of the engine's run, once `runs show` says its step waits for an event."""
    run_id = engine.run_id()

    def step_waits() -> bool:
        shown = json.loads(conveyor("runs", "show", run_id, "--db", str(db), "--json").stdout)
        return bool(shown["steps"][0]["status"] == "waiting")

    eventually(step_waits)
    return run_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "conveyor.db"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def waiter(write: Callable[[str, str], Path], db: Path, tmp_path: Path) -> Iterator[Background]:
    """`conveyor run` of a pipeline that waits for an event on job-7, in another process."""
    path = write("waiter.yaml", WAITING)
    engine = Background(
        "run", str(path), "-p", "correlation_id=job-7", "--db", str(db),
        stderr=tmp_path / "engine.stderr",
    )  # fmt: skip
    yield engine
    engine.kill()


def test_a_completed_run_exits_0_and_prints_the_run_as_json(db: Path) -> None:
    done = conveyor("run", str(EXAMPLES / "hello.yaml"), "-p", "who=Ada", "--db", str(db), "--json")

    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)  # stdout holds only the JSON; logs go to stderr
    assert run["status"] == "completed"
    assert run["outputs"]["greeting"] == "Hello, Ada!"
    assert [step["status"] for step in run["steps"]] == ["completed", "completed"]
    assert "Hello, Ada!" in done.stderr  # the log step's line


def test_the_live_view_ends_with_the_steps_and_the_outputs(db: Path) -> None:
    done = conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db))

    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout
    assert "greet" in done.stdout and "result" in done.stdout
    assert '"greeting": "Hello, world!"' in done.stdout


def test_a_failed_run_exits_1_and_prints_its_error(
    write: Callable[[str, str], Path], db: Path
) -> None:
    done = conveyor("run", str(write("failing.yaml", FAILING)), "--db", str(db))

    assert done.returncode == 1
    assert "failed" in done.stdout
    assert "the disk is full" in done.stdout + done.stderr


def test_bad_params_exit_2_naming_each_param(write: Callable[[str, str], Path], db: Path) -> None:
    path = write("typed.yaml", TYPED)

    done = conveyor("run", str(path), "-p", "count=many", "-p", "colour=red", "--db", str(db))

    assert done.returncode == 2
    assert "count: " in done.stderr
    assert "colour: unknown parameter" in done.stderr
    assert "label: is required" in done.stderr
    assert not json.loads(conveyor("runs", "list", "--db", str(db), "--json").stdout)


def test_params_are_coerced_and_may_come_from_a_json_file(
    write: Callable[[str, str], Path], db: Path
) -> None:
    path = write("typed.yaml", TYPED)
    label = write("label.json", json.dumps("crates"))

    done = conveyor(
        "run", str(path), "-p", "count=3", "-p", f"label=@{label}", "--db", str(db), "--json"
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == {"count": 3, "label": "crates"}


def test_an_invalid_pipeline_exits_1_with_every_error_and_its_path(
    write: Callable[[str, str], Path], db: Path
) -> None:
    done = conveyor("run", str(write("invalid.yaml", INVALID)), "--db", str(db))

    assert done.returncode == 1
    assert "steps[0].action: unknown action 'no_such_action'" in done.stderr
    assert "steps[1].depends_on[0]: unknown step 'missing'" in done.stderr


def test_a_missing_file_exits_1(db: Path) -> None:
    done = conveyor("run", "no/such/pipeline.yaml", "--db", str(db))

    assert done.returncode == 1
    assert "file not found" in done.stderr


def test_an_idempotency_key_used_before_shows_the_first_run(db: Path) -> None:
    args = ["run", str(EXAMPLES / "hello.yaml"), "--db", str(db), "--json"]
    first = conveyor(*args, "--idempotency-key", "greet-once")
    second = conveyor(*args, "--idempotency-key", "greet-once", "-p", "who=Bob")

    assert first.returncode == second.returncode == 0
    assert json.loads(first.stdout)["run_id"] == json.loads(second.stdout)["run_id"]
    assert "was used before" in second.stderr


def test_a_timeout_cancels_the_run_and_exits_1(write: Callable[[str, str], Path], db: Path) -> None:
    path = write("waiter.yaml", WAITING)

    done = conveyor(
        "run", str(path), "-p", "correlation_id=never", "--db", str(db), "--timeout", "1", "--json"
    )

    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "cancelled"
    assert "timed out after 1s" in done.stderr


def test_ctrl_c_cancels_the_run_and_exits_130_and_a_second_engine_is_refused(
    waiter: Background, db: Path
) -> None:
    run_id = waiting(waiter, db)

    busy = conveyor("run", str(EXAMPLES / "hello.yaml"), "--db", str(db))
    assert busy.returncode == 1
    assert f"in use by another engine (pid {waiter.pid})" in busy.stderr

    waiter.process.send_signal(signal.SIGINT)
    status, stdout = waiter.finish()

    assert status == 130, waiter.stderr
    # Said once, under the table: not again on stderr.
    assert (stdout + waiter.stderr).count("error: interrupted") == 1, stdout + waiter.stderr
    assert "CANCELLED" in stdout
    shown = json.loads(conveyor("runs", "show", run_id, "--db", str(db), "--json").stdout)
    assert shown["status"] == "cancelled"
    assert shown["steps"][0]["status"] == "cancelled"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 2 ** 64 }}", "the integer 18446744073709551616 is outside the 64-bit range"),
        ("{{ 1e308 * 10 }}", "params.message: inf is not a number a run can store"),
        ("{{ params.big * 10 }}", "params.message: inf is not a number a run can store"),
    ],
)
def test_a_first_step_whose_template_fails_fails_the_run_naming_the_step(
    write: Callable[[str, str], Path], db: Path, template: str, message: str
) -> None:
    path = write(
        "unstorable.yaml",
        "name: unstorable\nparameters:\n  - {name: big, type: number, default: 1e308}\n"
        f"steps:\n  - id: first\n    action: log\n"
        f'    params:\n      message: "{template}"\n',
    )
    result = conveyor("run", str(path), "--db", str(db), "--json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "failed"
    assert run["error"].startswith("step 'first' failed: ")
    assert message in run["error"]
    assert run["steps"][0]["status"] == "failed"
