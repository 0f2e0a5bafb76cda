"""Helpers for the scenarios that run on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from conveyor.client import Client
from conveyor.pipeline import PipelineSpec
from conveyor.runs import RunView

FAST_RETRY = {"max_attempts": 3, "initial_interval_seconds": 0.1, "backoff_coefficient": 2.0}
WAIT = 30.0
"""Generous: the machine is shared, and a slow run still proves what it has to."""


def pipeline(*steps: dict[str, Any], **fields: Any) -> PipelineSpec:
    """A pipeline of `steps` named `scenario`."""
    return PipelineSpec.model_validate({"name": "scenario", "steps": list(steps), **fields})


def unique(name: str) -> str:
    """A name no other test uses: tests share one server, whose workflows outlive them."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def digest(run: RunView) -> dict[str, Any]:
    """What must be equal on both backends: statuses, attempts, outputs and errors."""
    steps: dict[str, Any] = {}
    for step in run.steps:
        entry: dict[str, Any] = {"status": step.status.value, "attempt": step.attempt}
        if step.outputs is not None:
            entry["outputs"] = step.outputs
        if step.error is not None:
            entry["error"] = step.error
        if step.reason is not None:
            entry["reason"] = step.reason
        if step.items is not None:
            entry["items"] = [(i.item, i.status.value, i.attempt) for i in step.items]
        steps[step.step_id] = entry
    return {"status": run.status.value, "error": run.error, "outputs": run.outputs, "steps": steps}


async def until(
    client: Client, run_id: str, check: Callable[[RunView], bool], timeout: float = WAIT
) -> RunView:
    """Poll the run until `check` holds; fail with the last view past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        run = await client.get(run_id)
        if check(run):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s: {digest(run)}")
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def run_to_end(client: Client, spec: PipelineSpec, **params: Any) -> RunView:
    """Start `spec` and wait for its end."""
    return await client.wait(await client.start(spec, params), timeout=WAIT)


def echo(value: Any, **step: Any) -> dict[str, Any]:
    """A step echoing `value`; `step` adds or overrides fields (an `id` is required)."""
    params = {"value": value, **step.pop("params", {})}
    return {"action": "echo", "params": params, **step}


def echoed(value: Any, attempt: int = 1, **more: Any) -> dict[str, Any]:
    """The outputs of a completed echo step."""
    return {"value": value, "item": None, "index": None, "attempt": attempt, **more}


def waiting(cid: str, step: str = "wait", **extra: Any) -> dict[str, Any]:
    """A step waiting for an event on `cid`."""
    return {"id": step, "action": "await_event", "params": {"correlation_id": cid}, **extra}
