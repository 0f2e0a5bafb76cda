"""`waiting100k` / `waiting10k`: many runs waiting at once, their memory and event routing.

The engine runs in a subprocess of its own (`python -m bench.waiting`) so the resident set
measured is the engine's, not the bench's. It starts the runs in batches (each run one
EVENT_DRIVEN step waiting on its own correlation id), waits until every one is waiting,
measures RSS, then sends events to randomly chosen waiting runs one at a time and times each
from `send_event` until the engine reports (`subscribe`) the commit of that run's change: the
first after the event, in which its only step completes (checked with `wait` afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import (
    Metric,
    Options,
    Workload,
    engine,
    median,
    percentile,
    pipeline,
    until_waiting,
)
from conveyor.engine import RunStatus

EVENTS = 1000
BATCH = 1000
SEED = 20240601

SPEC = {
    "name": "waiting",
    "parameters": [{"name": "correlation_id", "type": "string", "required": True}],
    "steps": [
        {
            "id": "wait",
            "action": "bench_wait",
            "params": {"correlation_id": "{{ params.correlation_id }}"},
        }
    ],
}


def rss_mb() -> tuple[float, float]:
    """This process's resident set and its peak, in MB (MiB)."""
    try:
        import psutil

        info = psutil.Process().memory_info()
        current = info.rss
    except ImportError:
        current = _status_kb("VmRSS") * 1024
    return current / 2**20, _status_kb("VmHWM") * 1024 / 2**20


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ the child process


async def _child(runs: int, events: int) -> dict[str, float]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    spec = pipeline(SPEC)
    chosen = sorted(random.Random(SEED).sample(range(runs), min(events, runs)))
    wanted = set(chosen)
    run_ids: dict[int, str] = {}  # only the runs events will go to
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        # Redrawn only between measurements: an auto-refresh thread would take the GIL
        # in the middle of some of them.
        auto_refresh=False,
    )
    async with engine() as backend:
        gc.collect()
        baseline, _ = rss_mb()
        with progress:
            starting = progress.add_task(f"starting {runs:,} waiting runs", total=runs)
            started_at = time.perf_counter()
            cpu_at = time.process_time()
            for first in range(0, runs, BATCH):
                for i in range(first, min(first + BATCH, runs)):
                    run_id = await backend.start_run(spec, {"correlation_id": f"corr-{i}"})
                    if i in wanted:
                        run_ids[i] = run_id
                # Let this batch's executions return and commit before the next one.
                done = min(first + BATCH, runs)
                await until_waiting(backend, done)
                progress.update(starting, completed=done, refresh=True)
            start_seconds = time.perf_counter() - started_at
            start_cpu = time.process_time() - cpu_at
            database = sum(
                path.stat().st_size
                for path in backend.store.path.parent.iterdir()
                if path.name.startswith(backend.store.path.name)
            )
            gc.collect()
            rss, peak = rss_mb()

            routing = progress.add_task("routing events", total=len(chosen))
            latencies: list[float] = []
            order = list(chosen)
            random.Random(SEED + 1).shuffle(order)
            loop = asyncio.get_running_loop()
            committed: dict[str, asyncio.Future[float]] = {}

            def on_commit(run_id: str) -> None:
                future = committed.pop(run_id, None)
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())

            unsubscribe = backend.subscribe(on_commit)
            try:
                for i in order:
                    run_id = run_ids[i]
                    body = {"workflow_id": f"corr-{i}", "type": "done"}
                    done_at = committed[run_id] = loop.create_future()
                    sent = time.perf_counter()
                    await backend.send_event(body)
                    latencies.append((await done_at - sent) * 1000)
                    # The run's one step ends it: check, outside the measurement.
                    view = await backend.wait(run_id, timeout=60)
                    if view.status is not RunStatus.COMPLETED:
                        raise RuntimeError(f"run ended {view.status.value}: {view.error}")
                    progress.advance(routing)
                    if len(latencies) % 25 == 0:
                        progress.refresh()
            finally:
                unsubscribe()
    return {
        "rss": rss,
        "rss_peak": peak,
        "rss_baseline": baseline,
        "kb_per_run": (rss - baseline) * 1024 / runs,
        "start_seconds": start_seconds,
        "start_cpu": start_cpu,
        "database": database / 2**20,
        "p50": median(latencies),
        "p99": percentile(latencies, 99),
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child process: run, then write the figures as JSON to `--result`."""
    parser = argparse.ArgumentParser(prog="python -m bench.waiting")
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    figures = asyncio.run(_child(args.runs, args.events))
    args.result.write_text(json.dumps(figures))


# ------------------------------------------------------------------ the parent side


def _measure_in_child(runs: int, options: Options) -> dict[str, float]:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.waiting", "--runs", str(runs)]
        command += ["--events", str(EVENTS), "--result", str(result)]
        subprocess.run(command, cwd=root, env=env, check=True, timeout=options.timeout)
        figures: dict[str, float] = json.loads(result.read_text())
    return figures


def _workload(name: str, runs: int, quick_runs: int, repeat: int, timeout: float) -> Workload:
    def measure(options: Options) -> dict[str, float]:
        count = quick_runs if options.quick else runs
        if count != runs:
            options.notes.append(f"{name}: --quick, {count:,} runs instead of {runs:,}")
        return _measure_in_child(count, options)

    return Workload(
        name=name,
        description=f"{runs:,} runs waiting on their own correlation id, in a subprocess",
        metrics=(
            Metric("rss", "RSS with all runs waiting", "MB", target=300.0),
            Metric("rss_peak", "peak RSS (while starting them)", "MB"),
            Metric("rss_baseline", "RSS before starting runs", "MB"),
            Metric("kb_per_run", "RSS per waiting run", "KB"),
            Metric("start_seconds", "start all runs until all waiting", "s"),
            Metric("start_cpu", "… of which CPU time of the engine", "s"),
            Metric("database", "SQLite file and WAL", "MB"),
            Metric("p50", "send_event → run completed, p50", "ms"),
            Metric("p99", "send_event → run completed, p99", "ms", target=5.0),
        ),
        measure=measure,
        default_repeat=repeat,
        timeout=timeout,
        in_process=False,
    )


WAITING_100K = _workload("waiting100k", 100_000, 10_000, repeat=1, timeout=900.0)
WAITING_10K = _workload("waiting10k", 10_000, 10_000, repeat=3, timeout=180.0)


if __name__ == "__main__":
    main()
