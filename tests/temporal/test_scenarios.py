"""The same scenarios on both backends, with the same results.

Each scenario runs once on the embedded backend (a SQLite file) and once on Temporal (a dev
server with in-process workers), through the one `Client` API, and checks the run against the
same expectation: statuses per step, attempts, outputs, errors.
"""

from __future__ import annotations

import time
from pathlib import Path

from conveyor.actions import StepStatus
from conveyor.client import Client
from conveyor.engine import RunStatus
from tests.integration.engine.actions import Journal
from tests.temporal.actions import lines
from tests.temporal.scenario import (
    FAST_RETRY,
    WAIT,
    digest,
    echo,
    echoed,
    eventually,
    pipeline,
    run_to_end,
    unique,
    until,
    waiting,
)

# ------------------------------------------------------------------ scheduling


async def test_a_sequential_chain_passes_outputs_by_templates(conveyor: Client) -> None:
    spec = pipeline(
        echo("{{ params.name }}", id="a"),
        echo("{{ steps.a.outputs.value }}!", id="b", depends_on=["a"]),
        echo("{{ steps.b.outputs.value | upper }}", id="c", depends_on=["b"]),
        parameters=[{"name": "name", "type": "string", "required": True}],
        outputs={"greeting": "{{ steps.c.outputs.value }}", "first": "{{ steps.a.status }}"},
    )
    run = await run_to_end(conveyor, spec, name="ada")
    assert digest(run) == {
        "status": "completed",
        "error": None,
        "outputs": {"greeting": "ADA!", "first": "completed"},
        "steps": {
            "a": {"status": "completed", "attempt": 1, "outputs": echoed("ada")},
            "b": {"status": "completed", "attempt": 1, "outputs": echoed("ada!")},
            "c": {"status": "completed", "attempt": 1, "outputs": echoed("ADA!")},
        },
    }


async def test_fan_out_runs_in_parallel_and_fans_in(conveyor: Client, journal: Journal) -> None:
    spec = pipeline(
        echo(1, id="left", params={"sleep": 0.5}),
        echo(2, id="middle", params={"sleep": 0.5}),
        echo(3, id="right", params={"sleep": 0.5}),
        echo(
            "{{ steps.left.outputs.value + steps.middle.outputs.value"
            " + steps.right.outputs.value }}",
            id="join",
            depends_on=["left", "middle", "right"],
        ),
        outputs={"sum": "{{ steps.join.outputs.value }}"},
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"sum": 6}
    assert journal.max_concurrent == 3
    join = run.step("join").started_at
    assert join is not None
    assert all((run.step(s).finished_at or join) <= join for s in ("left", "middle", "right"))


async def test_for_each_runs_once_per_item_in_order(conveyor: Client, journal: Journal) -> None:
    spec = pipeline(
        echo(["a", "b", "c", "d"], id="list"),
        echo(
            "{{ index }}:{{ item }}",
            id="each",
            depends_on=["list"],
            for_each="{{ steps.list.outputs.value }}",
            max_parallel=2,
            params={"sleep": 0.1},
        ),
        outputs={"values": "{{ steps.each.outputs | map(attribute='value') | list }}"},
    )
    run = await run_to_end(conveyor, spec)
    assert digest(run)["steps"]["each"]["items"] == [
        (item, "completed", 1) for item in ("a", "b", "c", "d")
    ]
    assert run.outputs == {"values": ["0:a", "1:b", "2:c", "3:d"]}
    assert journal.max_concurrent == 2


async def test_for_each_item_failures_follow_on_failure(conveyor: Client) -> None:
    spec = pipeline(
        {
            "id": "each",
            "action": "flaky",
            "for_each": [1, 0, 1],
            "on_failure": "continue",
            "params": {"succeed_on": "{{ item }}"},
        },
        echo("{{ steps.each.status }}", id="after", depends_on=["each"]),
    )
    run = await run_to_end(conveyor, spec)
    assert digest(run) == {
        "status": "completed",
        "error": None,
        "outputs": {},
        "steps": {
            "each": {
                "status": "completed",
                "attempt": 0,
                "outputs": [{"attempt": 1}, None, {"attempt": 1}],
                "error": "items [1] failed",
                "items": [(1, "completed", 1), (0, "failed", 1), (1, "completed", 1)],
            },
            "after": {"status": "completed", "attempt": 1, "outputs": echoed("completed")},
        },
    }


async def test_conditions_skip_and_skips_propagate(conveyor: Client) -> None:
    spec = pipeline(
        echo("{{ params.flag }}", id="gate"),
        echo("yes", id="yes", depends_on=["gate"], condition="{{ not steps.gate.outputs.value }}"),
        echo("no", id="no", depends_on=["gate"], condition="{{ steps.gate.outputs.value }}"),
        echo("after", id="after_no", depends_on=["no"]),
        echo("after after", id="after_after", depends_on=["after_no"]),
        echo("join", id="join", depends_on=["yes", "no"], allow_skipped_upstream=True),
        parameters=[{"name": "flag", "type": "boolean", "default": False}],
    )
    run = await run_to_end(conveyor, spec)
    statuses = {step: value["status"] for step, value in digest(run)["steps"].items()}
    assert statuses == {
        "gate": "completed",
        "yes": "completed",
        "no": "skipped",
        "after_no": "skipped",
        "after_after": "skipped",
        "join": "completed",
    }
    assert run.step("no").reason == "condition was false"
    assert run.step("after_no").reason == "upstream step 'no' was skipped"
    assert run.step("after_after").reason == "upstream step 'after_no' was skipped"


# ------------------------------------------------------------------ retries and timeouts


async def test_retries_count_attempts_until_success(conveyor: Client, journal: Journal) -> None:
    spec = pipeline(
        {"id": "x", "action": "flaky", "params": {"succeed_on": 3}, "retry": FAST_RETRY},
    )
    run = await run_to_end(conveyor, spec)
    assert digest(run)["steps"]["x"] == {
        "status": "completed",
        "attempt": 3,
        "outputs": {"attempt": 3},
    }
    starts = journal.started_at["x"]
    assert len(starts) == 3
    # The backoff is honoured: 0.1 s before the second attempt, 0.2 s before the third.
    assert starts[1] - starts[0] >= 0.09
    assert starts[2] - starts[1] >= 0.19


async def test_retries_are_finite_and_keep_the_last_error(conveyor: Client) -> None:
    spec = pipeline(
        {
            "id": "x",
            "action": "flaky",
            "params": {"mode": "result"},
            "on_failure": "retry",
            "retry": {**FAST_RETRY, "initial_interval_seconds": 0.01},
        },
    )
    run = await run_to_end(conveyor, spec)
    assert digest(run) == {
        "status": "failed",
        "error": "step 'x' failed: refused on attempt 3",
        "outputs": None,
        "steps": {"x": {"status": "failed", "attempt": 3, "error": "refused on attempt 3"}},
    }


async def test_a_step_past_its_timeout_is_cancelled_and_cleaned_up(
    conveyor: Client, journal: Journal
) -> None:
    spec = pipeline(
        echo(1, id="slow", params={"sleep": 10}, timeout_seconds=0.5),
        echo(2, id="after", depends_on=["slow"]),
    )
    started = time.monotonic()
    run = await run_to_end(conveyor, spec)
    assert time.monotonic() - started < 8
    assert digest(run)["steps"] == {
        "slow": {"status": "timeout", "attempt": 1, "error": "timed out after 0.5s"},
        "after": {
            "status": "skipped",
            "attempt": 0,
            "reason": "step 'slow' failed: timed out after 0.5s",
        },
    }
    assert run.status is RunStatus.FAILED
    await eventually(lambda: journal.cleanups == ["slow"])


# ------------------------------------------------------------------ events


async def test_an_event_sent_before_the_wait_is_kept_and_delivered(conveyor: Client) -> None:
    cid = unique("early")
    receipt = await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED", "result": 7})
    assert receipt.correlation_id == cid
    spec = pipeline(
        echo(1, id="before", params={"sleep": 0.2}),
        waiting(cid, depends_on=["before"]),
        outputs={"result": "{{ steps.wait.outputs.result }}"},
    )
    run = await run_to_end(conveyor, spec)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"result": 7}
    assert digest(run)["steps"]["wait"] == {
        "status": "completed",
        "attempt": 1,
        "outputs": {"started": True, "result": 7},
    }


async def test_an_event_sent_while_waiting_completes_the_step(conveyor: Client) -> None:
    cid = unique("late")
    spec = pipeline(
        waiting(cid), echo("{{ steps.wait.outputs.result }}", id="next", depends_on=["wait"])
    )
    run_id = await conveyor.start(spec)
    waited = await until(conveyor, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    assert waited.step("wait").external_id == cid
    await conveyor.send_event({"workflow_id": cid, "progress": 40})
    await until(conveyor, run_id, lambda r: r.step("wait").progress == 40)
    await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED", "result": "done"})
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert run.status is RunStatus.COMPLETED
    assert run.step("next").outputs == echoed("done")


async def test_a_failed_event_fails_the_step(conveyor: Client) -> None:
    cid = unique("failing")
    spec = pipeline(waiting(cid), echo(1, id="next", depends_on=["wait"]))
    run_id = await conveyor.start(spec)
    await until(conveyor, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    await conveyor.send_event({"workflow_id": cid, "status": "FAILED", "message": "quota"})
    run = await conveyor.wait(run_id, timeout=WAIT)
    assert digest(run) == {
        "status": "failed",
        "error": "step 'wait' failed: quota",
        "outputs": None,
        "steps": {
            "wait": {
                "status": "failed",
                "attempt": 1,
                "outputs": {"started": True},
                "error": "quota",
            },
            "next": {"status": "skipped", "attempt": 0, "reason": "step 'wait' failed: quota"},
        },
    }


async def test_cancel_while_waiting_calls_cleanup(conveyor: Client, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    cid = unique("cancelled")
    spec = pipeline(
        {"id": "wait", "action": "hold", "params": {"correlation_id": cid, "marker": str(marker)}},
        echo(1, id="later", depends_on=["wait"]),
    )
    run_id = await conveyor.start(spec)
    await until(conveyor, run_id, lambda r: r.step("wait").status is StepStatus.WAITING)
    run = await conveyor.cancel(run_id)
    assert run.status is RunStatus.CANCELLED
    assert run.step("wait").status is StepStatus.CANCELLED
    assert run.step("later").status is StepStatus.SKIPPED
    await eventually(lambda: lines(marker) == ["execute wait", "cleanup wait"])
    # A second cancel is harmless, and an event that comes late changes nothing.
    assert (await conveyor.cancel(run_id)).status is RunStatus.CANCELLED
    await conveyor.send_event({"workflow_id": cid, "status": "COMPLETED"})
    assert (await conveyor.get(run_id)).status is RunStatus.CANCELLED


# ------------------------------------------------------------------ failures


async def test_on_failure_continue_lets_the_run_complete(conveyor: Client) -> None:
    spec = pipeline(
        {"id": "bad", "action": "flaky", "on_failure": "continue"},
        echo("{{ steps.bad.status }}", id="next", depends_on=["bad"]),
        outputs={"bad": "{{ steps.bad.status }}"},
    )
    run = await run_to_end(conveyor, spec)
    assert digest(run) == {
        "status": "completed",
        "error": None,
        "outputs": {"bad": "failed"},
        "steps": {
            "bad": {"status": "failed", "attempt": 1, "error": "ValueError: boom on attempt 1"},
            "next": {"status": "completed", "attempt": 1, "outputs": echoed("failed")},
        },
    }


BOOM = "step 'bad' failed: ValueError: boom on attempt 1"


async def test_fail_fast_cancels_running_siblings(conveyor: Client, journal: Journal) -> None:
    spec = pipeline(
        echo(1, id="slow", params={"sleep": 10}),
        {"id": "bad", "action": "flaky"},
        echo(2, id="after", depends_on=["bad"]),
    )
    started = time.monotonic()
    run = await run_to_end(conveyor, spec)
    assert time.monotonic() - started < 8
    assert digest(run) == {
        "status": "failed",
        "error": "step 'bad' failed: ValueError: boom on attempt 1",
        "outputs": None,
        "steps": {
            "slow": {"status": "cancelled", "attempt": 1, "reason": BOOM},
            "bad": {"status": "failed", "attempt": 1, "error": "ValueError: boom on attempt 1"},
            "after": {"status": "skipped", "attempt": 0, "reason": BOOM},
        },
    }
    await eventually(lambda: journal.cleanups == ["slow"])


async def test_without_fail_fast_other_branches_finish(conveyor: Client) -> None:
    spec = pipeline(
        echo(1, id="slow", params={"sleep": 0.3}),
        {"id": "bad", "action": "flaky"},
        echo(2, id="after_bad", depends_on=["bad"]),
        echo(3, id="after_slow", depends_on=["slow"]),
        settings={"fail_fast": False},
    )
    run = await run_to_end(conveyor, spec)
    statuses = {step: value["status"] for step, value in digest(run)["steps"].items()}
    assert run.status is RunStatus.FAILED
    assert statuses == {
        "slow": "completed",
        "bad": "failed",
        "after_bad": "skipped",
        "after_slow": "completed",
    }
