"""`conveyor actions ...`: the action catalog.

Both commands discover the installed actions afresh (`ActionRegistry.default()`), so what they
show is what an engine started now would load. Plugins that fail to load are reported on
stderr and never stop the listing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.actions import ActionDefinition, ActionRegistry, FailedPlugin, ParamDefinition
from conveyor.cli import tables
from conveyor.cli.app import app
from conveyor.cli.tables import fit
from conveyor.errors import UnknownActionError

actions_app = typer.Typer(help="List and inspect the installed actions.", no_args_is_help=True)
app.add_typer(actions_app, name="actions")

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the full metadata as JSON instead of tables.")
]


@actions_app.command("list")
def list_actions(as_json: JsonOption = False) -> None:
    """List the installed actions by category."""
    registry = ActionRegistry.default()
    grouped = registry.by_category()
    if as_json:
        document = {
            "categories": {
                category: [d.meta.model_dump(mode="json") for d in definitions]
                for category, definitions in grouped.items()
            },
            "failed": [failure.to_dict() for failure in registry.failures],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        console = Console()
        if not grouped:
            console.print("No actions are installed.")
        for index, (category, definitions) in enumerate(grouped.items()):
            if index:
                console.print()
            console.print(fit(_category_table(category, definitions), console))
    _warn(registry.failures)


@actions_app.command("show")
def show_action(
    action_type: Annotated[str, typer.Argument(metavar="TYPE", help="The action's type.")],
    as_json: JsonOption = False,
) -> None:
    """Show everything an action declares: its metadata, params and outputs."""
    registry = ActionRegistry.default()
    try:
        definition = registry.get(action_type)
    except UnknownActionError as exc:
        message = str(exc) if len(registry) else f"{exc} (no actions are installed)"
        typer.echo(f"error: {message}", err=True)
        for failure in registry.failures:
            # The entry point is usually named after the type: say why it is missing.
            if failure.entry_point.split(" = ")[0] == action_type:
                typer.echo(f"note: its plugin failed to load: {failure}", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(definition.meta.model_dump(mode="json"), indent=2))
        return
    _print_definition(Console(), definition)


def _category_table(category: str, definitions: list[ActionDefinition]) -> Table:
    table = tables.table("Type", "Version", "Mode", "Queue", "Description", title=category)
    table.title_style = "bold"
    for definition in definitions:
        meta = definition.meta
        table.add_row(
            # Text, not str: a description with [brackets] must not be read as markup.
            Text(meta.type, style="cyan"),
            Text(meta.version),
            Text(meta.execution_mode.value),
            Text(meta.queue),
            Text(meta.description),
        )
    return table


def _print_definition(console: Console, definition: ActionDefinition) -> None:
    meta = definition.meta
    console.print(Text.assemble((meta.name, "bold"), f" ({meta.type}) ", meta.version))
    console.print(Text(meta.description))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column(overflow="fold")
    policy = meta.retry_policy
    rows: list[tuple[str, str | None]] = [
        ("category", meta.category),
        ("mode", meta.execution_mode.value),
        ("queue", meta.queue),
        ("idempotent", "yes" if meta.idempotent else "no"),
        ("timeout", f"{_number(meta.timeout_seconds)} s" if meta.timeout_seconds else None),
        (
            "retry",
            f"{policy.max_attempts} attempts, {_number(policy.initial_interval_seconds)} s "
            f"then x{_number(policy.backoff_coefficient)} up to "
            f"{_number(policy.max_interval_seconds)} s"
            if policy
            else None,
        ),
        ("services", ", ".join(meta.required_services) or None),
        ("icon", meta.icon),
        ("color", meta.color),
        ("source", definition.source),
    ]
    for label, value in rows:
        if value is not None:
            facts.add_row(label, Text(value))
    console.print(facts)
    console.print()

    params = Table(title="Params", title_justify="left", title_style="bold")
    for column in ("Name", "Type", "Required", "Default", "Rules", "Options", "Description"):
        params.add_column(column, overflow="fold")
    for param in meta.params:
        params.add_row(
            Text(param.name, style="cyan"),
            Text(param.type.value),
            Text("yes" if param.required else "no"),
            Text(_json(param.default) if param.default is not None else ""),
            Text(_rules(param)),
            Text(", ".join(_option(o.label, o.value) for o in param.options or [])),
            Text(param.description or ""),
        )
    console.print(params if meta.params else Text("No params.", style="dim"))
    console.print()

    outputs = Table(title="Outputs", title_justify="left", title_style="bold")
    for column in ("Name", "Type", "Description"):
        outputs.add_column(column, overflow="fold")
    for output in meta.outputs:
        outputs.add_row(
            Text(output.name, style="cyan"), Text(output.type), Text(output.description or "")
        )
    console.print(outputs if meta.outputs else Text("No outputs.", style="dim"))
    if meta.documentation and meta.documentation.strip() != meta.description:
        console.print()
        console.print(Text(meta.documentation))


def _rules(param: ParamDefinition) -> str:
    parts: list[str] = []
    rules = param.validation
    if rules is not None:
        if rules.min is not None:
            parts.append(f">= {_number(rules.min)}")
        if rules.max is not None:
            parts.append(f"<= {_number(rules.max)}")
        if rules.min_length is not None:
            parts.append(f"length >= {rules.min_length}")
        if rules.max_length is not None:
            parts.append(f"length <= {rules.max_length}")
        if rules.pattern is not None:
            parts.append(f"matches {rules.pattern}")
    when = param.show_when
    if when is not None:
        if when.equals is not None:
            parts.append(f"shown when {when.param} == {_json(when.equals)}")
        if when.not_equals is not None:
            parts.append(f"shown when {when.param} != {_json(when.not_equals)}")
        if when.in_ is not None:
            parts.append(f"shown when {when.param} in {_json(when.in_)}")
    return "; ".join(parts)


def _option(label: str, value: Any) -> str:
    shown = value if isinstance(value, str) else _json(value)
    return shown if label == shown else f"{shown} ({label})"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _warn(failures: list[FailedPlugin]) -> None:
    for failure in failures:
        typer.echo(f"warning: skipped action plugin {failure}", err=True)
