"""What every peer script shares; copied next to nothing else, imported only by peer scripts.

Peer scripts run under their own virtualenv's Python, so they import nothing from `bench` or
`conveyor`: this module sits beside them and is found through the script's own directory.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Samples = dict[str, list[float]]


def parser(name: str) -> argparse.ArgumentParser:
    """The command line every peer script takes."""
    parser = argparse.ArgumentParser(prog=name)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--temporal-address", default=None)
    parser.add_argument("--server-pid", type=int, default=None)
    return parser


def emit(result: dict[str, Any]) -> None:
    """The one line of JSON the parent reads (the last line of stdout)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def not_offered(reason: str) -> dict[str, Any]:
    """A workload the peer has no equivalent for."""
    return {"skipped": reason}


def repeat(count: int, once: Callable[[], dict[str, float]]) -> Samples:
    """Run `once` `count` times and collect each figure's samples."""
    samples: Samples = {}
    for index in range(count):
        gc.collect()
        values = once()
        for key, value in values.items():
            samples.setdefault(key, []).append(value)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        print(f"  repeat {index + 1}/{count}: {shown}", file=sys.stderr, flush=True)
    return samples


def free_port() -> int:
    """A TCP port nobody listens on now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int | None = None) -> float:
    """Resident set of a process (this one by default), in MB (MiB)."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100), interpolating between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def now() -> float:
    """The clock every figure uses."""
    return time.perf_counter()
