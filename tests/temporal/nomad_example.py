"""A NOMAD-style action, laid out as NOMAD's plugin template lays one out: an input dataclass,
two activities on the CPU queue, a workflow that chains them, and the `Action` that registers
them (the entry point points at `greet_action`). Also a function action on the GPU queue, for
workers that serve one queue each."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from conveyor.actions import action
    from conveyor.backends.temporal.nomad import Action, TaskQueue


@dataclass
class GreetInput:
    """Whom to greet, how often, and how long to think before shouting."""

    name: str
    repeat: int = 1
    pause_seconds: float = 0.0


@dataclass
class GreetOutput:
    """The greeting and its length."""

    text: str
    length: int


@activity.defn
async def compose(data: GreetInput) -> str:
    """The greeting, `repeat` times."""
    return ", ".join([f"hello {data.name}"] * data.repeat)


@activity.defn
async def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


_RETRY = RetryPolicy(maximum_attempts=3)


@workflow.defn
class GreetWorkflow:
    """Greets someone, loudly."""

    @workflow.run
    async def run(self, data: GreetInput) -> GreetOutput:
        text = await workflow.execute_activity(
            compose, data, start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY
        )
        if data.pause_seconds:
            await workflow.sleep(data.pause_seconds)
        loud = await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY
        )
        return GreetOutput(text=loud, length=len(loud))


greet_action = Action(
    task_queue=TaskQueue.CPU,
    workflow=GreetWorkflow,
    activities=[compose, shout],
)


class SquareInput(BaseModel):
    """A number to square."""

    n: float


class SquareOutput(BaseModel):
    """Its square, and the process that computed it."""

    square: float
    pid: int


@action(type="gpu_square", category="Test", queue=TaskQueue.GPU)
async def gpu_square(data: SquareInput) -> SquareOutput:
    """Squares a number on the GPU queue's worker."""
    return SquareOutput(square=data.n * data.n, pid=os.getpid())
