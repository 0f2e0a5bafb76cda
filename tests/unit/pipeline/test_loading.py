"""Loading pipelines from files, text and mappings, and dumping them back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import PipelineLoadError, PipelineValidationError
from conveyor.pipeline import PipelineSpec, ValidationIssue, dump_pipeline, load_pipeline

YAML = """\
name: demo
description: A demo.
parameters:
  - name: who
    default: world
steps:
  - id: greet
    action: echo
    params:
      message: "Hello, {{ params.who }}"
  - id: after
    action: echo
    depends_on: [greet]
    on_failure: continue
    params: {message: done}
outputs:
  greeting: "{{ steps.greet.outputs.message }}"
"""

DOCUMENT: dict[str, Any] = {
    "name": "demo",
    "steps": [{"id": "greet", "action": "echo", "params": {"message": "hi"}}],
}


def issues_of(source: Any) -> dict[str, str]:
    with pytest.raises(PipelineValidationError) as caught:
        load_pipeline(source)
    issues = caught.value.issues
    assert all(isinstance(issue, ValidationIssue) for issue in issues)
    return {issue.path: issue.message for issue in issues if isinstance(issue, ValidationIssue)}


# ---------------------------------------------------------------------------- sources


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_loads_a_yaml_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"demo{suffix}"
    path.write_text(YAML, encoding="utf-8")
    spec = load_pipeline(path)
    assert spec.name == "demo"
    assert [s.id for s in spec.steps] == ["greet", "after"]
    assert spec.step("after").on_failure == "continue"
    assert load_pipeline(str(path)) == spec


def test_loads_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(DOCUMENT), encoding="utf-8")
    assert load_pipeline(path).steps[0].params == {"message": "hi"}


def test_loads_yaml_and_json_text() -> None:
    assert load_pipeline(YAML).parameters[0].default == "world"
    assert load_pipeline(json.dumps(DOCUMENT)).name == "demo"


def test_loads_a_mapping() -> None:
    spec = load_pipeline(DOCUMENT)
    assert isinstance(spec, PipelineSpec)
    assert spec.steps[0].action == "echo"


def test_a_file_with_another_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "demo.txt"
    path.write_text(YAML, encoding="utf-8")
    with pytest.raises(
        PipelineLoadError, match=r"unsupported file type \(use .yaml, .yml, .json\)"
    ):
        load_pipeline(path)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(PipelineLoadError) as caught:
        load_pipeline(path)
    assert caught.value.source == str(path)
    assert str(caught.value) == f"{path}: file not found"


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PipelineLoadError, match="not UTF-8 text"):
        load_pipeline(path)


def test_a_directory_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(PipelineLoadError, match="cannot read the file"):
        load_pipeline(path)


# ---------------------------------------------------------------------------- syntax


def test_a_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsteps:\n  - id: a\n    action: [echo\n", encoding="utf-8")
    with pytest.raises(PipelineLoadError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML at line 5, column 1")
    assert caught.value.source == str(path)


def test_a_yaml_error_in_text_points_at_the_bad_character() -> None:
    with pytest.raises(PipelineLoadError, match=r"<string>: invalid YAML at line 2, column 8"):
        load_pipeline("name: x\nsteps: *nope\n")


def test_a_json_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "steps": [,]\n}\n', encoding="utf-8")
    with pytest.raises(PipelineLoadError, match=r"JSON syntax error at line 3, column 13"):
        load_pipeline(path)


def test_a_repeated_yaml_key_is_refused_with_its_position() -> None:
    text = "name: x\nsteps:\n  - id: a\n    action: echo\n    action: log\n"
    with pytest.raises(PipelineLoadError, match=r"line 5, column 5: found the key 'action' twice"):
        load_pipeline(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "the document is empty"), ("- a\n- b\n", "must be a mapping, got list")],
)
def test_a_document_must_be_a_mapping(text: str, fragment: str) -> None:
    with pytest.raises(PipelineLoadError, match=fragment):
        load_pipeline(text)


# ---------------------------------------------------------------------------- shape


def test_shape_problems_are_reported_at_once_with_document_paths() -> None:
    issues = issues_of(
        {
            "steps": [
                {"id": "a", "action": "echo", "dependson": ["b"]},
                {"id": "b", "action": "echo", "on_failure": "explode"},
                {"id": "c", "action": "echo", "timeout_seconds": 0, "condition": [1]},
                {"id": "bad id", "action": "echo", "retry": {"max_attempts": 0}},
                {"id": "e"},
            ],
            "parameters": [{"name": "p", "type": "blob"}],
            "settings": {"max_parallel_steps": "many"},
        }
    )
    assert issues == {
        "name": "is required",
        "parameters[0].type": (
            "must be one of string, number, integer, boolean, object, array, any"
        ),
        "settings.max_parallel_steps": "must be an integer",
        "steps[0].dependson": "unknown field; did you mean 'depends_on'?",
        "steps[1].on_failure": "must be one of fail, continue, retry",
        "steps[2].timeout_seconds": "must be > 0",
        "steps[2].condition": "must be a string or a boolean",
        "steps[3].id": "'bad id' must be an identifier (letters, digits, _)",
        "steps[3].retry.max_attempts": "must be >= 1",
        "steps[4].action": "is required",
    }


def test_a_pipeline_needs_a_step() -> None:
    assert issues_of({"name": "x", "steps": []}) == {"steps": "must have at least 1 item(s)"}


def test_a_wrong_container_type_is_named() -> None:
    issues = issues_of({"name": "x", "steps": [{"id": "a", "action": "e", "params": [1]}]})
    assert issues == {"steps[0].params": "must be a mapping"}


def test_an_unknown_top_level_field_is_named() -> None:
    assert issues_of({**DOCUMENT, "output": {}}) == {
        "output": "unknown field; did you mean 'outputs'?"
    }


def test_validation_errors_from_text_keep_their_paths() -> None:
    issues = issues_of("name: x\nsteps:\n  - id: a\n    action: echo\n    max_parallel: 0\n")
    assert issues == {"steps[0].max_parallel": "must be >= 1"}


# ---------------------------------------------------------------------------- dumping


def test_dump_round_trips() -> None:
    spec = load_pipeline(YAML)
    dumped = dump_pipeline(spec)
    assert load_pipeline(dumped) == spec
    assert json.loads(json.dumps(dumped)) == dumped


def test_dump_leaves_defaults_out() -> None:
    dumped = dump_pipeline(load_pipeline(DOCUMENT))
    assert dumped == {
        "name": "demo",
        "steps": [{"id": "greet", "action": "echo", "params": {"message": "hi"}}],
    }
