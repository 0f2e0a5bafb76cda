"""docs/migrating-from-budpipeline.md: its DAG and its commands work as the page says."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.acceptance.test_cli_run import ROOT, command, environment

PAGE = ROOT / "docs" / "migrating-from-budpipeline.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(PAGE.read_text(encoding="utf-8")) if lang == kind]


def test_the_pages_commands_run_its_dag_as_it_says(tmp_path: Path) -> None:
    (dag,) = blocks("json")
    (tmp_path / "order.json").write_text(dag, encoding="utf-8")
    lines = [line for block in blocks("sh") for line in block.splitlines() if line.strip()]
    assert lines and all(line.startswith("conveyor ") for line in lines)

    results = []
    for line in lines:
        args = shlex.split(line)[1:]
        done = subprocess.run(
            [*command(), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=environment(),
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        results.append(done)

    run = json.loads(results[-1].stdout)
    assert run["outputs"] == {"label": "Small order", "note": "none"}
    statuses = {step["step_id"]: step["status"] for step in run["steps"]}
    assert statuses["freight"] == "skipped"
    assert statuses["confirm"] == "completed"
