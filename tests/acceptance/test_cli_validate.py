"""`conveyor validate`, driven as a user would: the real console script on real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    path for path in (ROOT / "examples").glob("*.y*ml") if path.name != "event_driven.yaml"
)

BROKEN = """\
name: broken
parameters:
  - name: unused
steps:
  - id: greet
    action: lgo
    params:
      message: hi
  - id: report
    action: log
    params:
      message: "{{ steps.greet.outputs.message }} {{ params.who }}"
      colour: red
  - id: report
    action: log
    depends_on: [missing]
    params:
      message: "{{ ''.__class__ }}"
"""


def conveyor(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    script = shutil.which("conveyor", path=str(Path(sys.executable).parent))
    command = (
        [script] if script else [sys.executable, "-c", "from conveyor.cli import main; main()"]
    )
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "250", "NO_COLOR": "1", "PATH": str(Path(sys.executable).parent)},
    )


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


def test_there_are_examples() -> None:
    names = {path.name for path in EXAMPLES}
    assert names >= {
        "hello.yaml",
        "fan_out.yaml",
        "conditional.yaml",
        "retry_and_timeout.yaml",
        "delay.yaml",
    }


def test_every_example_validates() -> None:
    result = conveyor("validate", *(str(path.relative_to(ROOT)) for path in EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in EXAMPLES:
        assert f"{path.relative_to(ROOT)}: OK" in result.stdout
    assert "warning:" not in result.stdout


def test_a_broken_pipeline_names_each_problem_and_exits_1(broken: Path) -> None:
    result = conveyor("validate", str(broken))
    assert result.returncode == 1
    header, *issues = result.stdout.splitlines()
    assert header == f"{broken}: 7 errors, 1 warning"
    # The known actions depend on what is installed; the rest is exact.
    known = issues[0].split(" (known: ", 1)[1]
    assert "log" in known.split(", ")
    assert issues == [
        f"  error: steps[0].action: unknown action 'lgo'; did you mean 'log'? (known: {known}",
        "  error: steps[1].params.colour: unknown param of action 'log' (known: level, message)",
        "  error: steps[1].params.message: steps.greet.outputs.message: step 'greet' is not "
        "upstream of this step: add 'greet' to depends_on so it has finished before this step "
        "renders",
        "  error: steps[1].params.message: params.who: not a declared pipeline parameter "
        "(declared: unused)",
        "  error: steps[2].id: duplicate step id 'report' (also steps[1])",
        "  error: steps[2].depends_on[0]: unknown step 'missing'",
        "  error: steps[2].params.message: attribute '__class__' is refused by the sandbox",
        "  warning: parameters[0]: parameter 'unused' is declared but no template uses it",
    ]


def test_good_and_bad_files_together(broken: Path) -> None:
    result = conveyor("validate", "examples/hello.yaml", str(broken))
    assert result.returncode == 1
    assert "examples/hello.yaml: OK" in result.stdout
    assert f"{broken}: 7 errors, 1 warning" in result.stdout


def test_json_output(broken: Path) -> None:
    result = conveyor("validate", "--json", "examples/hello.yaml", str(broken))
    assert result.returncode == 1
    files: list[dict[str, Any]] = json.loads(result.stdout)["files"]
    assert [(f["file"], f["ok"]) for f in files] == [
        ("examples/hello.yaml", True),
        (str(broken), False),
    ]
    assert files[0]["errors"] == [] and files[0]["warnings"] == []
    assert {"path": "steps[2].id", "message": "duplicate step id 'report' (also steps[1])"} in (
        files[1]["errors"]
    )
    assert files[1]["warnings"] == [
        {
            "path": "parameters[0]",
            "message": "parameter 'unused' is declared but no template uses it",
        }
    ]


def test_json_output_of_valid_files_exits_0() -> None:
    result = conveyor("validate", "--json", "examples/hello.yaml")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "files": [{"file": "examples/hello.yaml", "ok": True, "errors": [], "warnings": []}]
    }


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = conveyor("validate", str(missing), "examples/hello.yaml")
    assert result.returncode == 1
    assert f"{missing}: 1 error" in result.stdout
    assert "  error: file not found" in result.stdout
    assert "examples/hello.yaml: OK" in result.stdout


def test_a_syntax_error_gives_its_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsteps:\n  - id: a\n   action: log\n", encoding="utf-8")
    result = conveyor("validate", str(path))
    assert result.returncode == 1
    assert "  error: invalid YAML at line 4, column 4" in result.stdout


def test_shape_errors_have_document_paths(tmp_path: Path) -> None:
    path = tmp_path / "shape.json"
    path.write_text(
        json.dumps({"name": "x", "steps": [{"id": "a", "action": "log", "on_failure": "x"}]}),
        encoding="utf-8",
    )
    result = conveyor("validate", str(path))
    assert result.returncode == 1
    assert "  error: steps[0].on_failure: must be one of fail, continue, retry" in result.stdout


def test_validate_needs_a_file() -> None:
    result = conveyor("validate")
    assert result.returncode == 2
