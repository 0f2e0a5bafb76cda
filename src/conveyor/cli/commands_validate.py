"""`conveyor validate FILE...`: check pipelines against the installed actions."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from conveyor.cli.app import app
from conveyor.errors import PipelineLoadError, PipelineValidationError
from conveyor.pipeline import ActionLookup, ValidationIssue, load_pipeline, validate_pipeline


@dataclass
class FileResult:
    """The outcome of checking one file."""

    file: str
    errors: list[ValidationIssue] = field(default_factory=list)
    warnings: list[ValidationIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the file holds a pipeline that can run."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "file": self.file,
            "ok": self.ok,
            "errors": [_issue_dict(i) for i in self.errors],
            "warnings": [_issue_dict(i) for i in self.warnings],
        }


@app.command("validate")
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Pipeline files (.yaml, .yml or .json).", show_default=False),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on standard output.")
    ] = False,
) -> None:
    """Check pipeline files against the installed actions; exit 1 if any has errors."""
    # Imported here so that `conveyor --help` does not pay for plugin discovery.
    from conveyor.actions import ActionRegistry

    registry = ActionRegistry.default()
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    for failure in registry.failures:
        errors.print(Text(f"warning: skipped action plugin {failure}", style="yellow"))
    results = [check_file(path, registry) for path in files]
    if as_json:
        typer.echo(json.dumps({"files": [r.to_dict() for r in results]}, indent=2))
    else:
        _print(results, Console(highlight=False, soft_wrap=True, file=sys.stdout))
    if not all(result.ok for result in results):
        raise typer.Exit(1)


def check_file(path: Path, registry: ActionLookup) -> FileResult:
    """Load and validate the pipeline in `path`; unreadable files are errors too."""
    result = FileResult(str(path))
    try:
        spec = load_pipeline(path)
    except PipelineLoadError as exc:
        message = str(exc).removeprefix(f"{exc.source}: ")
        result.errors.append(ValidationIssue("", message))
        return result
    except PipelineValidationError as exc:
        result.errors.extend(
            i if isinstance(i, ValidationIssue) else ValidationIssue("", str(i)) for i in exc.issues
        )
        return result
    report = validate_pipeline(spec, registry)
    result.errors.extend(report.errors)
    result.warnings.extend(report.warnings)
    return result


def _print(results: list[FileResult], console: Console) -> None:
    for result in results:
        header = Text(f"{result.file}: ", style="bold")
        if result.ok:
            header.append("OK", style="bold green")
            if result.warnings:
                header.append(f" ({_count(len(result.warnings), 'warning')})")
        else:
            header.append(
                f"{_count(len(result.errors), 'error')}"
                + (f", {_count(len(result.warnings), 'warning')}" if result.warnings else ""),
                style="bold red",
            )
        console.print(header)
        for issue in result.errors:
            console.print(Text(f"  error: {issue}", style="red"))
        for issue in result.warnings:
            console.print(Text(f"  warning: {issue}", style="yellow"))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _issue_dict(issue: ValidationIssue) -> dict[str, str]:
    return {"path": issue.path, "message": issue.message}
