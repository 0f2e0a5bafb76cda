"""Measure one workload on the systems other than Conveyor embedded, into the same report.

Conveyor on Temporal and the hand-written Temporal workflow share one dev server per workload,
started on free ports for it alone, so their figures come from the same server in the same run.
Prefect and DBOS each run in their own virtualenv. A system that cannot run here (not
installable, no equivalent, over its time bound) is recorded as skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from bench import on_temporal
from bench.compare import SYSTEMS
from bench.harness import Metric, Workload
from bench.peer_envs import PEERS
from bench.peer_run import run_peer
from bench.report import Report, Row
from bench.temporal_server import Unavailable, dev_server

if TYPE_CHECKING:
    from conveyor.backends.temporal.devserver import DevServer

TIMEOUTS = {"waiting10k": 900.0, "waiting100k": 900.0, "event_resume": 600.0}
"""Seconds all repeats of one workload may take on one system; 300 for the others."""
TEMPORAL = ("conveyor-temporal", "temporal")
REPEAT_CAP = 3
"""Repeats on the other systems at most (their runs take seconds, not milliseconds)."""
WAITING_REPEAT = 1
"""Repeats of a waiting workload on the other systems: each is thousands of runs already."""


def repeat_of(workload: str, repeat: int) -> int:
    """How many repeats the other systems run of `workload` when Conveyor runs `repeat`."""
    if workload.startswith("waiting"):
        return min(repeat, WAITING_REPEAT)
    return min(repeat, REPEAT_CAP)


def timeout_of(workload: str) -> float:
    """The bound on one system's repeats of `workload`."""
    return TIMEOUTS.get(workload, 300.0)


def metric_of(workload: Workload, key: str, system: str) -> Metric:
    """How to show figure `key`: Conveyor's own metric without its target, when it has one."""
    if system == "conveyor-temporal":
        for metric in on_temporal.METRICS.get(workload.name, ()):
            if metric.key == key:
                return metric
    for metric in workload.metrics:
        if metric.key == key:
            return dataclasses.replace(metric, target=None)
    return Metric(key, key, "")


def record(
    report: Report, workload: Workload, system: str, samples: dict[str, list[float]]
) -> None:
    """Add a system's samples as rows, in the order of Conveyor's metrics where they match."""
    order = [metric.key for metric in workload.metrics]
    keys = sorted(samples, key=lambda key: order.index(key) if key in order else len(order))
    for key in keys:
        metric = metric_of(workload, key, system)
        report.rows.append(Row(workload.name, metric, samples[key], system=system))


def _one(
    workload: Workload,
    system: str,
    repeat: int,
    quick: bool,
    report: Report,
    logs: Path,
    server: DevServer | None,
) -> None:
    name = workload.name
    print(f"  {SYSTEMS[system]}: {name}", flush=True)
    if system == "conveyor-temporal":
        if server is None:
            raise Unavailable("no Temporal dev server")
        if on_temporal.plan(name, quick) is None:
            report.skipped[(system, name)] = on_temporal.NOT_MEASURED
            return
        try:
            samples = on_temporal.run(name, server.address, repeat, quick, timeout_of(name))
        except TimeoutError:
            report.skipped[(system, name)] = f"timed out after {timeout_of(name):g} s (bounded)"
            return
        record(report, workload, system, samples)
        return
    result = run_peer(
        PEERS[system],
        name,
        repeat=repeat,
        quick=quick,
        timeout=timeout_of(name),
        logs=logs,
        server=server,
    )
    if result.skipped is not None:
        report.skipped[(system, name)] = result.skipped
    else:
        record(report, workload, system, result.samples)


def run_systems(
    workload: Workload,
    systems: list[str],
    repeat: int,
    quick: bool,
    report: Report,
    logs: Path,
) -> None:
    """Measure `workload` on each of `systems` (none of them Conveyor embedded)."""
    repeat = repeat_of(workload.name, repeat)
    with ExitStack() as stack:
        server: DevServer | None = None
        for system in systems:
            try:
                if system in TEMPORAL and server is None:
                    server = stack.enter_context(dev_server())
                _one(workload, system, repeat, quick, report, logs, server)
            except Unavailable as exc:
                report.skipped[(system, workload.name)] = f"skipped: {exc}"
                print(f"  {SYSTEMS[system]}: skipped: {exc}", flush=True)
            except Exception as exc:  # noqa: BLE001 - one system failing must not stop the rest
                traceback.print_exc()
                report.errors[f"{system} {workload.name}"] = f"{type(exc).__name__}: {exc}"
