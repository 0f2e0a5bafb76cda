"""Run one peer's workload script in the peer's virtualenv and read its figures back.

The script prints one JSON line last on stdout: `{"samples": {key: [values...]}}`, or
`{"skipped": reason}` when the peer offers no equivalent. Its stderr goes to a log file beside
the results, so a failure can be read after the run.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.peer_envs import Peer, python_of, script
from bench.temporal_server import Unavailable

if TYPE_CHECKING:
    from conveyor.backends.temporal.devserver import DevServer


@dataclass(frozen=True)
class PeerResult:
    """What a peer script measured, or why it measured nothing."""

    samples: dict[str, list[float]]
    skipped: str | None = None


def run_peer(
    peer: Peer,
    workload: str,
    *,
    repeat: int,
    quick: bool,
    timeout: float,
    logs: Path,
    server: DevServer | None = None,
) -> PeerResult:
    """Run `workload` `repeat` times with `peer`, bounded by `timeout` seconds.

    Raises:
        Unavailable: the peer cannot be installed or run here (the message says why).
    """
    python = python_of(peer)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{peer.name}-{workload}.log"
    with tempfile.TemporaryDirectory(prefix=f"conveyor-bench-{peer.name}-") as tmp:
        command = [str(python), str(script(peer)), "--workload", workload]
        command += ["--repeat", str(repeat), "--workdir", tmp]
        if quick:
            command.append("--quick")
        if peer.needs_temporal:
            if server is None:
                raise Unavailable(f"{peer.label} needs a Temporal dev server")
            command += ["--temporal-address", server.address, "--server-pid", str(server.pid)]
        with log.open("w") as err:
            try:
                done = subprocess.run(
                    command, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired as exc:
                # The figures may be out already, with only the peer's shutdown overrunning.
                result = _result(exc.stdout)
                if result is None:
                    return PeerResult({}, f"timed out after {timeout:g} s (bounded); log: {log}")
                return _parsed(result)
    result = _result(done.stdout)
    if done.returncode != 0 or result is None:
        raise RuntimeError(f"{peer.label} {workload} exited {done.returncode}; log: {log}")
    return _parsed(result)


def _result(stdout: str | bytes | None) -> dict[str, Any] | None:
    """The last line of the script's stdout as JSON, if it is a result."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    lines = (stdout or "").strip().splitlines()
    if not lines:
        return None
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


def _parsed(result: dict[str, Any]) -> PeerResult:
    """Samples, or the reason the peer gave for having none."""
    if "skipped" in result:
        return PeerResult({}, str(result["skipped"]))
    return PeerResult({key: list(values) for key, values in result["samples"].items()})
