"""The example plugin distributions under tests/plugins, installed with pip for a test.

They are installed into a ``--target`` directory rather than the project's virtualenv, so a
test sees them only where it puts that directory on the path (PYTHONPATH of a subprocess, or
sys.path), and nothing outlives the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).parents[1] / "plugins"
EXAMPLE_PLUGIN = PLUGINS / "conveyor_example_plugin"
BROKEN_PLUGIN = PLUGINS / "conveyor_broken_plugin"


def install_plugins(target: Path, *plugins: Path) -> Path:
    """Build and install `plugins` into the directory `target`, and return it.

    Builds from copies: setuptools writes build/ and *.egg-info next to the sources it builds.
    No index and no build isolation: the project's own setuptools builds them, offline.
    """
    sources = target.parent / f"{target.name}-sources"
    copies = []
    for plugin in plugins:
        copy = sources / plugin.name
        shutil.copytree(plugin, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        copies.append(str(copy))
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--disable-pip-version-check",
        "--target",
        str(target),
        *copies,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install {copies}:\n{done.stdout}\n{done.stderr}")
    return target


def environment_with(site: Path) -> dict[str, str]:
    """This process's environment with `site` first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env
