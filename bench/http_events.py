"""`http_events`: events over HTTP into `conveyor serve`, from a load generator on loopback.

The service runs as a user runs it (`conveyor serve`, in a process of its own, on the
embedded engine, auth on: every POST carries the events token), without uvicorn's access log
(`--no-access-log`, as a service taking thousands of events a second is run; a line a request
cost ~12% of the throughput); this process is the load generator. Every run is `wait` (a
`wait_for_event` on the run's own correlation id) then `after` (a `log` step). The runs are
started and left waiting before the service starts, so only events cross HTTP while measured.

- latency: events sent one at a time; from just before the POST to the moment the engine
  started `after` (its `started_at`, same machine, same clock), so it covers HTTP, parsing,
  routing, the commit and the scheduling of the successor.
- throughput: the next events sent by `CONCURRENCY` connections at once, one event a request;
  events a second from the first POST until the last of those runs has completed (read from
  the database, which the service writes). Then the same with `BATCH` events a request (a JSON
  array, as a sender with many events at once, or Dapr's bulk delivery, would send them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx
import structlog

from bench.harness import Metric, Options, Workload, median, percentile, pipeline, until_waiting
from conveyor.actions import ActionRegistry
from conveyor.backends.local import LocalBackend
from conveyor.config import Settings

LATENCY_EVENTS = 200
THROUGHPUT_EVENTS = 4000
QUICK_THROUGHPUT_EVENTS = 1000
CONCURRENCY = 32
BATCH = 50
_GAP_SECONDS = 0.02
_TOKEN = "bench-events-token"
_AUTH = {"Authorization": f"Bearer {_TOKEN}"}
_START_SECONDS = 30.0

SPEC = {
    "name": "http_events",
    "parameters": [{"name": "correlation_id", "type": "string", "required": True}],
    "steps": [
        {
            "id": "wait",
            "action": "wait_for_event",
            "params": {"correlation_id": "{{ params.correlation_id }}", "timeout_seconds": 3600},
        },
        {"id": "after", "action": "log", "depends_on": ["wait"], "params": {"message": "on"}},
    ],
}


async def _prepare(db: Path, count: int) -> None:
    """Start `count` runs and stop the engine once all of them wait (they stay waiting)."""
    # Quiet: each run's wait would log a line, thousands of them in the bench's output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    spec = pipeline(SPEC)
    settings = Settings(db_path=db)
    async with LocalBackend(ActionRegistry.default(), settings) as backend:
        for i in range(count):
            await backend.start_run(spec, {"correlation_id": f"ev-{i}"})
        await until_waiting(backend, count)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(db: Path, port: int, log: Path, synchronous: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from conveyor.cli import main; main()"]
    args = ["serve", "--no-access-log", "--port", str(port), "--db", str(db)]
    args += ["--sqlite-synchronous", synchronous]
    env = {**os.environ, "CONVEYOR_EVENTS_TOKEN": _TOKEN}
    with log.open("wb") as sink:
        return subprocess.Popen([*command, *args], stdout=sink, stderr=subprocess.STDOUT, env=env)


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"conveyor serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"conveyor serve did not answer within {_START_SECONDS:.0f} s")


def _successor_started(db: Path) -> dict[str, float]:
    """Each run's correlation id → when its `after` step started (epoch seconds)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT r.params, json_extract(u.data, '$.started_at') FROM units u "
            "JOIN runs r ON r.id = u.run_id "
            "WHERE u.step_id = 'after' AND json_extract(u.data, '$.started_at') IS NOT NULL"
        ).fetchall()
    import orjson

    return {orjson.loads(params)["correlation_id"]: float(at) for params, at in rows}


def _completed(db: Path) -> tuple[int, float]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        count, last = conn.execute(
            "SELECT count(*), max(finished_at) FROM runs WHERE status = 'completed'"
        ).fetchone()
    return int(count), float(last or 0.0)


async def _latency(url: str, db: Path) -> list[float]:
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=_AUTH) as client:
        for i in range(LATENCY_EVENTS):
            correlation = f"ev-{i}"
            sent[correlation] = time.time()
            answer = await client.post("/events", json={"workflow_id": correlation})
            answer.raise_for_status()
            # Lets this run's successor start before the next event; not part of any figure.
            await asyncio.sleep(_GAP_SECONDS)
    started = await _eventually(lambda: _successor_started(db), len(sent))
    return [(started[c] - at) * 1000 for c, at in sent.items()]


async def _eventually(read: object, count: int, timeout: float = 60) -> dict[str, float]:
    assert callable(read)
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, float] = read()
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {count} successors started in {timeout} s")
        await asyncio.sleep(0.05)


async def _post_loop(port: int, bodies: list[bytes]) -> None:
    """POST each body to /events over one keep-alive connection, one after another.

    A minimal HTTP/1.1 client: httpx spends more CPU a request than the service does, and on
    two cores the load generator must not be what is measured.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in bodies:
            writer.write(
                b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (_TOKEN.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
            if status != 202:
                raise RuntimeError(f"POST /events answered {status}: {answer[:500]!r}")
    finally:
        writer.close()


async def _throughput(port: int, db: Path, first: int, count: int, batch: int = 1) -> float:
    events = [b'{"workflow_id": "ev-%d"}' % i for i in range(first, first + count)]
    if batch == 1:
        bodies = events
    else:
        bodies = [b"[" + b",".join(events[k : k + batch]) + b"]" for k in range(0, count, batch)]
    shares = [bodies[k::CONCURRENCY] for k in range(CONCURRENCY)]
    began = time.time()
    await asyncio.gather(*(_post_loop(port, share) for share in shares))
    deadline = time.monotonic() + 120
    while True:
        done, last = _completed(db)
        if done >= first + count:
            return count / (last - began)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done - first} of {count} runs completed in 120 s")
        await asyncio.sleep(0.1)


def measure(options: Options, synchronous: str = "NORMAL") -> dict[str, float]:
    """One repeat, with the load generator in a fresh process of its own (`_child`).

    Not in the bench's process: on two cores the load generator shares a core with whatever
    else runs, and that process keeps what earlier workloads left (Temporal's core threads,
    a bigger heap): in one full run, in process, this measured 1,730 events a second where two
    runs of it alone measured 2,014 and 2,103.
    """
    events = QUICK_THROUGHPUT_EVENTS if options.quick else THROUGHPUT_EVENTS
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-http-") as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.http_events", str(events), str(result)]
        command.append(synchronous)
        subprocess.run(command, cwd=root, env=env, check=True, timeout=options.timeout)
        figures: dict[str, float] = json.loads(result.read_text())
    options.notes.append(
        f"http_events: {LATENCY_EVENTS} events one at a time, then {events:,} events over "
        f"{CONCURRENCY} connections; `conveyor serve --no-access-log --sqlite-synchronous "
        f"{synchronous}` in its own process, every POST with the events token, the load "
        "generator in another"
    )
    return figures


def _child(events: int, synchronous: str) -> dict[str, float]:
    """One repeat: a fresh database, a fresh `conveyor serve`, both phases."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-http-") as tmp:
        db = Path(tmp) / "bench.db"
        asyncio.run(_prepare(db, LATENCY_EVENTS + 2 * events))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "serve.log"
        process = _serve(db, port, log, synchronous)
        try:
            _wait_up(url, process, log)
            latencies = asyncio.run(_latency(url, db))
            rate = asyncio.run(_throughput(port, db, LATENCY_EVENTS, events))
            batched = asyncio.run(
                _throughput(port, db, LATENCY_EVENTS + events, events, batch=BATCH)
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "latency_median": median(latencies),
        "latency_p99": percentile(latencies, 99),
        "throughput": rate,
        "throughput_batched": batched,
    }


WORKLOAD = Workload(
    name="http_events",
    description="POST /events on `conveyor serve` → successor started, and events a second",
    metrics=(
        Metric("latency_median", "HTTP event → successor started, median", "ms", target=10.0),
        Metric("latency_p99", "HTTP event → successor started, p99", "ms"),
        Metric("throughput", "events a second, one event a request", "/s", 2000.0, at_least=True),
        Metric("throughput_batched", f"events a second, {BATCH} events a request", "/s"),
    ),
    measure=measure,
    default_repeat=3,
    timeout=300.0,
    in_process=False,
    compared=False,
)


WORKLOAD_FULL = Workload(
    name="http_events_full",
    description="http_events with SQLite synchronous=FULL (an fsync a commit)",
    metrics=(
        Metric("latency_median", "HTTP event → successor started, median, FULL", "ms"),
        Metric("latency_p99", "HTTP event → successor started, p99, FULL", "ms"),
        Metric("throughput", "events a second, one event a request, FULL", "/s"),
        Metric("throughput_batched", f"events a second, {BATCH} events a request, FULL", "/s"),
    ),
    measure=partial(measure, synchronous="FULL"),
    default_repeat=3,
    timeout=300.0,
    in_process=False,
    compared=False,
)


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(_child(int(sys.argv[1]), sys.argv[3])))
