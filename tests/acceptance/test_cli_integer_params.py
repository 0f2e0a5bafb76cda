"""`conveyor validate` refuses a fraction for an `@action` field typed `int`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.plugins import EXAMPLE_PLUGIN, environment_with, install_plugins

PIPELINE = """\
name: count
steps:
  - id: count
    action: example_word_count
    params:
      text: a few words
      min_length: 2.5
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugins(tmp_path_factory.mktemp("cli-int") / "site", EXAMPLE_PLUGIN)


def test_validate_names_the_integer_field(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "count.yaml"
    path.write_text(PIPELINE)
    done = subprocess.run(
        [sys.executable, "-c", "from conveyor.cli import main; main()", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment_with(site), "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "steps[0].params.min_length: must be an integer, got 2.5" in done.stdout + done.stderr
