"""What every input edge refuses, and the durability setting."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conveyor.backends.local import LocalBackend
from conveyor.config import Settings
from conveyor.errors import PipelineLoadError, PipelineValidationError
from conveyor.inputs import MAX_DEPTH, unstorable
from conveyor.pipeline.loading import load_pipeline


def test_unstorable_names_each_bad_value_by_its_path() -> None:
    value = {"a": [1.0, math.nan], "b": {"c": "\udc80"}, "d": "fine", "e": math.inf}
    assert unstorable(value, "params") == [
        ("params.a[1]", "must be a finite number, got nan"),
        ("params.b.c", "is not valid Unicode text (a lone surrogate)"),
        ("params.e", "must be a finite number, got inf"),
    ]
    deep: list[object] = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    assert unstorable(deep)[0][1] == f"nests more than {MAX_DEPTH} levels deep"
    assert unstorable({"x": ["é", 1, None, True]}) == []


@pytest.mark.parametrize("source", [None, 3, b"name: p"])
def test_load_pipeline_of_something_else_is_a_clear_error(source: object) -> None:
    with pytest.raises(PipelineLoadError, match="a pipeline is a path, YAML or JSON text"):
        load_pipeline(source)  # type: ignore[arg-type]


def test_pipeline_documents_refuse_non_finite_numbers_and_long_integers() -> None:
    with pytest.raises(PipelineValidationError, match=r"steps\[0\]\.timeout_seconds"):
        load_pipeline(
            {"name": "p", "steps": [{"id": "a", "action": "log", "timeout_seconds": math.inf}]}
        )
    with pytest.raises(PipelineLoadError, match="an integer of more than 4,300 digits"):
        load_pipeline('{"name": "p", "x": ' + "9" * 5000 + "}")
    with pytest.raises(PipelineLoadError, match="not a JSON number"):
        load_pipeline('{"name": "p", "x": NaN}')


@pytest.mark.parametrize(("setting", "pragma"), [("NORMAL", 1), ("FULL", 2)])
async def test_the_durability_setting_reaches_sqlite(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    settings = Settings(db_path=tmp_path / "c.db", sqlite_synchronous=setting)  # type: ignore[arg-type]
    async with LocalBackend(settings=settings) as backend:
        assert backend.store.db.execute("PRAGMA synchronous").fetchone()[0] == pragma
