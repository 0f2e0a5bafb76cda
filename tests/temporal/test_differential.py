"""Seeded random pipelines run on every backend must give the same runs, step by step.

A fixed set of seeds runs in the suite. More run with `make fuzz-diff`, or with
`CONVEYOR_DIFF_SEEDS=N` (seeds 1..N; `CONVEYOR_DIFF_FIRST_SEED` moves the start). A failing
seed is reproduced with `CONVEYOR_DIFF_SEEDS=1 CONVEYOR_DIFF_FIRST_SEED=<seed>`.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from temporalio.worker import Worker

from conveyor.client import Client
from conveyor.pipeline.validation import validate_pipeline
from tests.integration.engine.actions import Journal
from tests.temporal import actions
from tests.temporal.differential import differences, digest, random_pipeline
from tests.temporal.scenario import WAIT

FIXED_SEEDS = [1, 2, 3, 5, 8, 13, 21, 34]


def _seeds() -> list[int]:
    count = os.environ.get("CONVEYOR_DIFF_SEEDS")
    if not count:
        return FIXED_SEEDS
    first = int(os.environ.get("CONVEYOR_DIFF_FIRST_SEED") or 1)
    return list(range(first, first + int(count)))


@pytest.mark.parametrize("seed", _seeds())
def test_the_generator_makes_valid_pipelines_of_5_to_25_steps(seed: int) -> None:
    spec = random_pipeline(seed)
    assert 5 <= len(spec.steps) <= 25
    report = validate_pipeline(spec, actions.registry())
    assert not report.errors, report.errors
    assert random_pipeline(seed) == spec


@pytest.mark.parametrize("seed", _seeds())
async def test_a_random_pipeline_runs_the_same_on_every_backend(
    seed: int,
    local_client: Client,
    evicting_client: Client,
    temporal_client: Client,
    temporal_workers: list[Worker],
    journal: Journal,
) -> None:
    spec = random_pipeline(seed)
    clients = {
        "local": local_client,
        "local-evicting": evicting_client,
        "temporal": temporal_client,
    }
    run_ids = {name: await client.start(spec) for name, client in clients.items()}
    views = await asyncio.gather(
        *(clients[name].wait(run_id, timeout=WAIT * 2) for name, run_id in run_ids.items())
    )
    digests = dict(zip(clients, (digest(view) for view in views), strict=True))
    for name in ("local-evicting", "temporal"):
        found = differences(digests["local"], digests[name])
        assert not found, f"seed {seed}: local and {name} differ:\n" + "\n".join(found)
