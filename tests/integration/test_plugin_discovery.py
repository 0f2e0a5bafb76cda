"""Plugins installed with pip are discovered; a broken one is reported and the rest load.

The two distributions under tests/plugins are built and installed with pip, then a fresh
Python process (the project's interpreter, the plugins on its PYTHONPATH) builds
`ActionRegistry.default()` and prints what it found as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugins import BROKEN_PLUGIN, EXAMPLE_PLUGIN, environment_with, install_plugins

pytestmark = pytest.mark.slow

DISCOVER = textwrap.dedent(
    """
    import asyncio, json

    from conveyor.actions import ActionContext, ActionRegistry, validated_params

    def run(action_type, params):
        # As the engine runs a step: params validated against the meta, a fresh executor.
        definition = registry.get(action_type)
        params = validated_params(definition.meta, params)
        context = ActionContext(step_id="s", execution_id="r", params=params)
        result = asyncio.run(definition.new_executor().execute(context))
        return result.model_dump(mode="json")

    registry = ActionRegistry.default()
    report = registry.last_discovery
    found = {
        "report": report.to_dict(),
        "summary": report.summary(),
        "types": registry.types(),
        "metas": {d.type: d.meta.model_dump(mode="json") for d in registry.list()},
    }
    if "example_shout" in registry:
        found["word_count"] = run("example_word_count", {"text": "to be or not"})
        found["shout"] = run("example_shout", {"text": "hey", "excitement": 2})
    print(json.dumps(found))
    """
)


def discover(site: Path | None) -> dict[str, Any]:
    """What `ActionRegistry.default()` finds in a new process, with `site` on its path."""
    done = subprocess.run(
        [sys.executable, "-c", DISCOVER],
        capture_output=True,
        text=True,
        env=environment_with(site) if site is not None else None,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    site = install_plugins(
        tmp_path_factory.mktemp("plugins") / "site", EXAMPLE_PLUGIN, BROKEN_PLUGIN
    )
    return discover(site)


def test_the_example_plugins_actions_are_loaded_with_their_package(found: dict[str, Any]) -> None:
    loaded = {entry["type"]: entry for entry in found["report"]["loaded"]}
    assert loaded["example_shout"] == {
        "type": "example_shout",
        "version": "0.1.0",
        "source": "conveyor-example-plugin 0.1.0 "
        "(example_shout = conveyor_example_plugin:ShoutAction)",
    }
    assert loaded["example_word_count"]["source"] == (
        "conveyor-example-plugin 0.1.0 (example_word_count = conveyor_example_plugin:word_count)"
    )


def test_the_broken_plugin_is_reported_with_package_entry_point_and_error(
    found: dict[str, Any],
) -> None:
    broken = [f for f in found["report"]["failed"] if f["package"] == "conveyor-broken-plugin"]
    assert broken == [
        {
            "package": "conveyor-broken-plugin",
            "version": "0.2.0",
            "entry_point": "broken_action = conveyor_broken_plugin:BrokenAction",
            "phase": "load",
            "error": "RuntimeError: conveyor_broken_plugin needs BROKEN_LICENCE_KEY, "
            "which is not set",
        }
    ]
    assert "failed: conveyor-broken-plugin 0.2.0 [broken_action = " in found["summary"]
    assert "broken_action" not in found["types"]


def test_the_other_actions_still_load(found: dict[str, Any]) -> None:
    # Whatever Conveyor itself provides loads the same with a broken plugin installed.
    without_plugins = discover(None)
    assert set(without_plugins["types"]) | {"example_shout", "example_word_count"} == set(
        found["types"]
    )
    own_failures = [f for f in found["report"]["failed"] if f["package"] == "conveyor"]
    assert own_failures == without_plugins["report"]["failed"]


def test_the_function_actions_metadata_is_derived_from_its_models(found: dict[str, Any]) -> None:
    meta = found["metas"]["example_word_count"]
    assert (meta["category"], meta["queue"], meta["description"]) == (
        "Examples",
        "cpu",
        "Count the words of a text.",
    )
    params = {p["name"]: p for p in meta["params"]}
    assert params["text"]["type"] == "string"
    assert params["text"]["required"] is True
    assert params["min_length"]["validation"]["min"] == 1
    assert meta["outputs"] == [
        {"name": "words", "type": "number", "description": "How many words the text has"}
    ]


def test_the_discovered_actions_run(found: dict[str, Any]) -> None:
    assert found["word_count"]["success"] is True
    assert found["word_count"]["outputs"] == {"words": 4}
    assert found["shout"]["outputs"] == {"text": "HEY!!"}
