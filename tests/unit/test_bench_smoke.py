"""`python -m bench` runs two small workloads end to end and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_runs_and_writes_its_report(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench", "--only", "seq100,par1000"]
    command += ["--repeat", "1", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    for expected in ("workload", "median", "target", "seq100", "par1000", "targets met"):
        assert expected in done.stdout, done.stdout
    assert "event_resume" not in done.stdout

    markdown = (tmp_path / "latest.md").read_text()
    assert "| workload | figure | repeats | median | min | max | target | result |" in markdown
    assert "| seq100 |" in markdown
    assert "| par1000 |" in markdown
    assert "repeats: 1 (--quick)" in markdown
    results = json.loads((tmp_path / "latest.json").read_text())
    assert {row["workload"] for row in results["results"]} == {"seq100", "par1000"}
    assert all(row["samples"] and row["median"] > 0 for row in results["results"])
    assert results["errors"] == {}


def test_bench_refuses_an_unknown_workload(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench", "--only", "nope", "--out", str(tmp_path)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False
    )

    assert done.returncode == 2
    assert "unknown workload(s) nope" in done.stderr
    assert not (tmp_path / "latest.md").exists()
