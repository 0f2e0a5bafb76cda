"""`conveyor actions list` and `conveyor actions show`, driven as a user would.

The example and broken plugins under tests/plugins are installed with pip into a directory
that is put on the path: in-process for the CliRunner tests, on PYTHONPATH for the tests of the
real console script. The built-in actions may or may not be there; no test depends on them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import conveyor.cli.commands_actions  # noqa: F401 - registers `actions` on the root app
from conveyor.actions import ActionRegistry
from conveyor.cli import app
from tests.support.plugins import BROKEN_PLUGIN, EXAMPLE_PLUGIN, environment_with, install_plugins

BROKEN_WARNING = (
    "warning: skipped action plugin conveyor-broken-plugin 0.2.0 "
    "[broken_action = conveyor_broken_plugin:BrokenAction]: RuntimeError: "
    "conveyor_broken_plugin needs BROKEN_LICENCE_KEY, which is not set"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugins(tmp_path_factory.mktemp("cli") / "site", EXAMPLE_PLUGIN, BROKEN_PLUGIN)


@pytest.fixture
def plugins(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugins on sys.path for one test; their modules forgotten afterwards."""
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(site)):
            del sys.modules[name]


def run_cli(*args: str) -> Result:
    # Wide enough that Rich does not wrap the rows the tests look for.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def line_with(text: str, output: str) -> str:
    [line] = [line for line in output.splitlines() if text in line]
    return line


def meta_of(action_type: str) -> dict[str, Any]:
    dumped: dict[str, Any] = ActionRegistry.default().get(action_type).meta.model_dump(mode="json")
    return dumped


@pytest.mark.usefixtures("plugins")
def test_list_shows_the_actions_in_a_table_per_category() -> None:
    result = run_cli("actions", "list")
    assert result.exit_code == 0, result.output
    assert "Examples" in [line.strip() for line in result.stdout.splitlines()]
    shout = line_with("example_shout", result.stdout)
    for cell in ("0.1.0", "sync", "default", "Upper-cases a text"):
        assert cell in shout
    word_count = line_with("example_word_count", result.stdout)
    for cell in ("1.0.0", "sync", "cpu", "Count the words of a text."):
        assert cell in word_count


@pytest.mark.usefixtures("plugins")
def test_list_warns_about_a_broken_plugin_on_stderr_and_still_lists() -> None:
    result = run_cli("actions", "list")
    assert result.exit_code == 0
    assert BROKEN_WARNING in result.stderr.splitlines()
    assert "broken" not in result.stdout
    assert "example_shout" in result.stdout


@pytest.mark.usefixtures("plugins")
def test_list_json_gives_full_metadata_by_category_and_the_failures() -> None:
    result = run_cli("actions", "list", "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert set(document) == {"categories", "failed"}
    assert document["categories"]["Examples"] == [
        meta_of("example_shout"),
        meta_of("example_word_count"),
    ]
    assert {
        "package": "conveyor-broken-plugin",
        "version": "0.2.0",
        "entry_point": "broken_action = conveyor_broken_plugin:BrokenAction",
        "phase": "load",
        "error": "RuntimeError: conveyor_broken_plugin needs BROKEN_LICENCE_KEY, which is not set",
    } in document["failed"]
    assert BROKEN_WARNING in result.stderr.splitlines()


@pytest.mark.usefixtures("plugins")
def test_show_prints_metadata_params_and_outputs() -> None:
    result = run_cli("actions", "show", "example_shout")
    assert result.exit_code == 0, result.output
    out, outputs = result.stdout.split("\nOutputs")
    assert out.splitlines()[:2] == ["Shout (example_shout) 0.1.0", "Upper-cases a text"]
    assert "Examples" in line_with("category", out)
    assert "yes" in line_with("idempotent", out)
    assert (
        "conveyor-example-plugin 0.1.0 (example_shout = conveyor_example_plugin:ShoutAction)"
        in (line_with("source", out))
    )
    text = line_with("│ text ", out)
    for cell in ("string", "yes", "length >= 1; length <= 280", "What to shout"):
        assert cell in text
    style = line_with("│ style ", out)
    for cell in ("select", "no", '"loud"', "loud (Loud), calm (Calm)"):
        assert cell in style
    excitement = line_with("│ excitement ", out)
    for cell in ("number", "1", '>= 0; <= 5; shown when style == "loud"'):
        assert cell in excitement
    assert "The text, shouted" in line_with("│ text ", outputs)


@pytest.mark.usefixtures("plugins")
def test_show_of_a_function_action_shows_what_its_models_declare() -> None:
    result = run_cli("actions", "show", "example_word_count")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "cpu" in line_with("queue", out)
    min_length = line_with("│ min_length ", out)
    for cell in ("integer", "no", "1", ">= 1", "Shorter words are not counted"):
        assert cell in min_length
    assert "How many words the text has" in line_with("│ words ", out)


@pytest.mark.usefixtures("plugins")
def test_show_json_is_the_full_metadata() -> None:
    result = run_cli("actions", "show", "example_word_count", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == meta_of("example_word_count")


@pytest.mark.usefixtures("plugins")
def test_show_of_an_unknown_type_names_it_and_the_known_ones() -> None:
    result = run_cli("actions", "show", "exmaple_shout")
    assert result.exit_code == 1
    assert result.stdout == ""
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: unknown action type 'exmaple_shout' (known: ")
    assert "example_shout, example_word_count" in error


@pytest.mark.usefixtures("plugins")
def test_show_of_a_type_whose_plugin_failed_says_why() -> None:
    result = run_cli("actions", "show", "broken_action")
    assert result.exit_code == 1
    assert "error: unknown action type 'broken_action'" in result.stderr
    assert (
        "note: its plugin failed to load: conveyor-broken-plugin 0.2.0 "
        "[broken_action = conveyor_broken_plugin:BrokenAction]: RuntimeError: "
    ) in result.stderr


def console_script(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "conveyor"
    return subprocess.run(
        [str(executable), *args],
        capture_output=True,
        text=True,
        env=environment_with(site),
        timeout=60,
        check=False,
    )


def test_the_console_script_exits_1_for_an_unknown_type(site: Path) -> None:
    done = console_script(site, "actions", "show", "nope")
    assert done.returncode == 1
    assert "error: unknown action type 'nope' (known: " in done.stderr
    assert done.stdout == ""


def test_the_console_script_lists_installed_plugins_as_json(site: Path) -> None:
    done = console_script(site, "actions", "list", "--json")
    assert done.returncode == 0, done.stderr
    examples = json.loads(done.stdout)["categories"]["Examples"]
    assert [meta["type"] for meta in examples] == ["example_shout", "example_word_count"]
    assert BROKEN_WARNING in done.stderr.splitlines()
