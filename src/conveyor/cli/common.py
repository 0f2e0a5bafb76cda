"""What the command modules share: the `--db` option, `-p key=value` parsing, output helpers.

Machine-readable output (`--json`) goes to stdout and everything meant for a person (errors,
warnings, engine logs) to stderr, so `conveyor run x.yaml --json | jq` always gets clean JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text

from conveyor.config import Settings
from conveyor.errors import ConfigurationError
from conveyor.inputs import loads, unstorable

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="The SQLite database (default: $CONVEYOR_DB_PATH, else .conveyor/conveyor.db "
        "in the working directory, the one `make run` serves).",
        show_default=False,
        dir_okay=False,
        metavar="PATH",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def settings_for(db: Path | None) -> Settings:
    """Settings from the environment, with `--db` (when given) as the database.

    Exits with status 2 when the environment holds settings that do not parse.
    """
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        fail(f"invalid CONVEYOR_* settings: {exc}", code=2)
    except ConfigurationError as exc:  # A setting that needs an extra not installed.
        fail(str(exc), code=2)
    if db is not None:
        settings = settings.model_copy(update={"db_path": db})
    return settings


def database_for(db: Path | None) -> Settings:
    """`settings_for(db)`, after saying on stderr which database the command uses.

    Two commands that disagree about the database (a key made in one file, served from
    another) are the hardest mistake to see; every command that opens one names it.
    """
    settings = settings_for(db)
    note(f"database: {shown_path(settings.db_path)}")
    return settings


def shown_path(path: Path) -> str:
    """`path` as a person can use it from here: relative below the working directory."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def command_name() -> str:
    """`conveyor` as it must be typed here to run this very program.

    Bare when the shell's PATH finds this installation (an activated virtualenv); otherwise
    its path, e.g. `.venv/bin/conveyor` after `make run`, so a hint works as printed.
    """
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if script.name != "conveyor":  # Run as `python -m ...`: the script beside the interpreter.
        script = Path(sys.executable).with_name("conveyor")
    if not script.is_file():
        return "conveyor"
    found = shutil.which("conveyor")
    if found is not None and os.path.samefile(found, script):
        return "conveyor"
    return shown_path(script)


def parse_params(pairs: list[str]) -> dict[str, str | Any]:
    """Turn `-p key=value` options into a mapping.

    Values stay strings: the pipeline's parameter resolver coerces them to the declared types.
    ``key=@file.json`` reads the value as JSON from a file; ``key=@@text`` is the literal
    ``@text``.

    Raises:
        typer.BadParameter: an option without ``=``, an empty key, or an unreadable file.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="'-p'")
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@"):
            params[key] = read_json_file(value[1:], option="-p")
            continue
        params[key] = value
    return params


def read_json_file(path: str, *, option: str) -> Any:
    """The JSON document in `path`.

    Raises:
        typer.BadParameter: the file cannot be read or is not JSON (names `option`).
    """
    try:
        value = loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint=f"'{option}'"
        ) from exc
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            param_hint=f"'{option}'",
        ) from exc
    except (ValueError, RecursionError) as exc:  # Too many digits, or nested too deeply.
        raise typer.BadParameter(f"{path} cannot be read: {exc}", param_hint=f"'{option}'") from exc
    unfit = unstorable(value)
    if unfit:
        where, message = unfit[0]
        raise typer.BadParameter(
            f"{path}: {where or 'the value'} {message}", param_hint=f"'{option}'"
        )
    return value


def print_json(value: BaseModel | Any) -> None:
    """Print a model (or any JSON-ready value) as indented JSON on stdout, uncoloured."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    # Plain write, not Rich: Rich would wrap long strings and break the JSON.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """Print an error for a person on stderr (the message is never read as Rich markup)."""
    # soft_wrap: the terminal folds a long line, but no newline is put inside a path or a
    # command the message names, so it still works when copied.
    stderr.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def detail(message: str) -> None:
    """Print an indented line under an error or warning, on stderr."""
    stderr.print(Text("  " + message), soft_wrap=True)


def note(message: str) -> None:
    """Print a line of progress for a person, on stderr."""
    stderr.print(Text(message, style="dim"), soft_wrap=True)


def warning(message: str) -> None:
    """Print a warning on stderr."""
    stderr.print(Text.assemble(("warning: ", "yellow"), message), soft_wrap=True)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print an error and exit with `code`."""
    error(message)
    raise typer.Exit(code)


class _CurrentStderr:
    """A file that writes to whatever `sys.stderr` is at the time of the write.

    structlog's PrintLogger keeps the file it was given; Rich's live display swaps
    `sys.stderr` for a proxy that prints above the display, and logs must follow that swap.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: int = logging.INFO) -> None:
    """Send structlog's output (engine and `log` steps) to stderr, unless already configured.

    An application that configured structlog itself keeps its own setup.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            # Plain tracebacks: Rich's (the default) print every frame's local variables,
            # megabytes and seconds for a deep one, and may show values that are secrets.
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
