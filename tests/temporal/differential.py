"""Random pipelines from a seed, and what must be equal about their runs on every backend.

`random_pipeline(seed)` makes a DAG of 5-25 steps mixing fan-outs and fan-ins, `for_each`
(literal and rendered lists, with and without `max_parallel`), conditions that skip, retries
that succeed and retries that run out, failures that fail the run or are continued past,
durable delays and timeouts. Everything about a run of it is decided by the pipeline, not by
timing: steps that can fail while siblings run never cancel them (`fail_fast` off), and a
`for_each` whose items can fail continues past them. So every backend must give the same
`digest`, step by step.
"""

from __future__ import annotations

import random
import re
from typing import Any

from conveyor.pipeline import PipelineSpec
from conveyor.runs import RunView

RETRY = {"max_attempts": 3, "initial_interval_seconds": 0.05, "backoff_coefficient": 1.0}

_KINDS = ["echo", "echo", "echo", "fan_out", "flaky", "fails", "delay", "timeout", "each_fail"]


def random_pipeline(seed: int) -> PipelineSpec:
    """A valid pipeline made from `seed` alone (the same seed gives the same pipeline)."""
    rng = random.Random(seed)
    count = rng.randint(5, 25)
    steps: list[dict[str, Any]] = []
    echoes: list[str] = []  # Steps whose outputs hold a `value` (when they complete).
    for number in range(count):
        step_id = f"s{number}"
        earlier = [step["id"] for step in steps]
        deps = sorted(rng.sample(earlier, k=min(len(earlier), rng.choice([0, 1, 1, 2, 3]))))
        step = _step(rng, step_id, deps, [d for d in deps if d in echoes])
        if step["action"] == "echo" and "for_each" not in step:
            echoes.append(step_id)
        steps.append(step)
    outputs = {
        f"o{i}": "{{ steps." + step["id"] + ".status }}"
        for i, step in enumerate(rng.sample(steps, k=min(3, len(steps))))
    }
    return PipelineSpec.model_validate(
        {
            "name": f"differential-{seed}",
            "parameters": [{"name": "flag", "type": "boolean", "default": rng.random() < 0.5}],
            "settings": {"fail_fast": False, "max_parallel_steps": rng.randint(2, 8)},
            "steps": steps,
            "outputs": outputs,
        }
    )


def _step(
    rng: random.Random, step_id: str, deps: list[str], echo_deps: list[str]
) -> dict[str, Any]:
    kind = rng.choice(_KINDS)
    step: dict[str, Any] = {"id": step_id, "depends_on": deps}
    if kind in ("echo", "fan_out"):
        step.update(action="echo", params={"value": _value(rng, echo_deps)})
        if kind == "fan_out":
            step["for_each"] = _items(rng, echo_deps)
            step["params"] = {"value": rng.choice(["{{ item }}", "{{ [item, index] }}"])}
            if rng.random() < 0.5:
                step["max_parallel"] = rng.randint(1, 3)
    elif kind == "flaky":
        # Succeeds on attempt 1-3 (within its retries), or on 4 (never: it runs out).
        step.update(
            action="flaky",
            params={"succeed_on": rng.randint(1, 4)},
            retry=RETRY,
            on_failure=rng.choice(["continue", "fail"]),
        )
    elif kind == "fails":
        step.update(
            action="flaky",
            params={"succeed_on": 0, "mode": rng.choice(["raise", "result"])},
            on_failure=rng.choice(["continue", "continue", "fail"]),
        )
    elif kind == "delay":
        step.update(action="delay", params={"seconds": 0.05})
        if rng.random() < 0.5:
            step["for_each"] = [0.05] * rng.randint(1, 4)
            step["params"] = {"seconds": "{{ item }}"}
            step["max_parallel"] = rng.randint(1, 2)
    elif kind == "timeout":
        step.update(
            action="echo",
            params={"value": "slow", "sleep": 1.0},
            timeout_seconds=0.1,
            on_failure=rng.choice(["continue", "fail"]),
        )
    else:  # each_fail: items that fail, retry, or succeed; continued past.
        step.update(
            action="flaky",
            for_each=[rng.randint(0, 3) for _ in range(rng.randint(1, 4))],
            params={"succeed_on": "{{ item }}"},
            retry=RETRY,
            on_failure="continue",
            max_parallel=rng.randint(1, 3),
        )
    if deps and rng.random() < 0.3:
        dep = rng.choice(deps)
        step["condition"] = rng.choice(
            [
                "{{ steps." + dep + ".status == 'completed' }}",
                "{{ steps." + dep + ".status != 'completed' }}",
                "{{ params.flag }}",
                "{{ not params.flag }}",
            ]
        )
    if deps and rng.random() < 0.2:
        step["allow_skipped_upstream"] = True
    return step


def _value(rng: random.Random, echo_deps: list[str]) -> Any:
    choices: list[Any] = [rng.randint(0, 100), "text", [1, 2], "{{ params.flag }}"]
    if echo_deps:
        dep = rng.choice(echo_deps)
        choices += [
            "{{ steps." + dep + ".outputs.value }}",
            "{{ [steps." + dep + ".outputs.attempt, 3, 3] | unique }}",
            "{{ (steps." + dep + ".outputs.value, 1) }}",
        ]
    return rng.choice(choices)


def _items(rng: random.Random, echo_deps: list[str]) -> Any:
    choices: list[Any] = [
        [rng.randint(0, 9) for _ in range(rng.randint(0, 4))],
        "{{ range(" + str(rng.randint(0, 4)) + ") | list }}",
        "{{ [3, 1, 2, 1] | unique | reverse }}",
    ]
    if echo_deps:
        dep = rng.choice(echo_deps)
        choices.append("{{ [steps." + dep + ".outputs.attempt] * 2 }}")
    return rng.choice(choices)


_FAILED_STEP = re.compile(r"^step '[^']+' failed: ")


def digest(run: RunView) -> dict[str, Any]:
    """Everything about the run that must not differ between backends.

    Every step's status, attempts, params, outputs, error and reason, and its items'. The
    run's error names the first step to fail, and with `fail_fast` off two independent steps
    may fail in either order: it is compared as "a step failed" (each step's own error is).
    """
    steps: dict[str, Any] = {}
    for step in run.steps:
        entry: dict[str, Any] = {
            "status": step.status.value,
            "attempt": step.attempt,
            "params": step.params,
            "outputs": step.outputs,
            "error": step.error,
            "reason": step.reason,
        }
        if step.items is not None:
            entry["items"] = [
                {
                    "item": item.item,
                    "status": item.status.value,
                    "attempt": item.attempt,
                    "outputs": item.outputs,
                    "error": item.error,
                }
                for item in step.items
            ]
        steps[step.step_id] = entry
    error = run.error
    if error is not None and _FAILED_STEP.match(error):
        error = "a step failed"
    return {"status": run.status.value, "error": error, "outputs": run.outputs, "steps": steps}


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Where two digests differ, one line each (empty when they agree)."""
    found: list[str] = []
    for key in ("status", "error", "outputs"):
        if expected[key] != actual[key]:
            found.append(f"run {key}: {expected[key]!r} != {actual[key]!r}")
    for step_id in sorted(set(expected["steps"]) | set(actual["steps"])):
        mine, theirs = expected["steps"].get(step_id), actual["steps"].get(step_id)
        if mine is None or theirs is None:
            found.append(f"step {step_id}: {mine!r} != {theirs!r}")
            continue
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                found.append(f"step {step_id} {key}: {mine.get(key)!r} != {theirs.get(key)!r}")
    return found
