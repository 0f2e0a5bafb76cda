"""The peers' virtualenvs: one per peer under `bench/.peers/<name>/`, pinned, made on demand.

Each peer runs in a virtualenv of its own, created with `python -m venv` and the pinned
requirements below, so its dependencies never meet Conveyor's (Prefect pins its own FastAPI).
A venv is reused while its requirements are unchanged (a marker file holds them).
"""

from __future__ import annotations

import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

from bench.temporal_server import Unavailable

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".peers"
SCRIPTS = ROOT / "peers"
INSTALL_SECONDS = 900.0


@dataclass(frozen=True)
class Peer:
    """A system measured beside Conveyor, by a script run with its own virtualenv's Python."""

    name: str
    label: str
    requirements: tuple[str, ...]
    script: str
    needs_temporal: bool = False


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            "temporal",
            "Temporal (hand-written)",
            ("temporalio==1.35.0",),
            "temporal_sdk.py",
            needs_temporal=True,
        ),
        # Prefect 3.8.8 still passes `min_items` to FastAPI's Body(), which FastAPI 0.151+
        # rejects at import; it needs FastAPI >= 0.139, so 0.150.0 is the one that works.
        Peer("prefect", "Prefect 3", ("prefect==3.8.8", "fastapi==0.150.0"), "prefect3.py"),
        Peer("dbos", "DBOS on SQLite", ("dbos==3.4.0",), "dbos_sqlite.py"),
    )
}


def python_of(peer: Peer, cache: Path = CACHE) -> Path:
    """The peer's virtualenv Python, creating and installing the venv first if needed.

    Raises:
        Unavailable: the venv could not be made or its requirements not installed.
    """
    home = cache / peer.name
    python = home / "bin" / "python"
    marker = home / ".requirements"
    wanted = "\n".join(peer.requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"  installing {peer.label} into {home} ({', '.join(peer.requirements)})", flush=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *peer.requirements],
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{peer.label} could not be installed: {exc}") from exc
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
        detail = " ".join(errors[-2:]) or result.stderr.strip()[-300:]
        raise Unavailable(f"{peer.label} could not be installed: {detail}")
    marker.write_text(wanted)
    return python


def script(peer: Peer) -> Path:
    """The peer's workload script."""
    return SCRIPTS / peer.script
