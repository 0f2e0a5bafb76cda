"""Read a pipeline from a file, a string or a mapping, and write one back.

Two kinds of failure, kept apart because they are fixed differently: a document that cannot
be parsed (`PipelineLoadError`, with the line and column of the syntax error) and a document
that parses but does not fit the spec (`PipelineValidationError`, with every problem at once,
each with its path in the document such as ``steps[1].on_failure``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable, Mapping
from difflib import get_close_matches
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from conveyor.errors import PipelineLoadError, PipelineValidationError
from conveyor.inputs import MAX_DEPTH, loads, unstorable
from conveyor.pipeline.budpipeline import BUDPIPELINE, dialect_of, from_budpipeline
from conveyor.pipeline.references import join_path
from conveyor.pipeline.spec import PipelineSpec
from conveyor.pipeline.validation import ValidationIssue

SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
"""File suffixes `load_pipeline` reads, and the format each one means."""

PipelineSource = str | os.PathLike[str] | Mapping[str, Any]

_QUOTED = re.compile(r"'([^']*)'")
_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
}


def load_pipeline(source: PipelineSource) -> PipelineSpec:
    """Load a pipeline.

    Args:
        source: A path (``.yaml``, ``.yml`` or ``.json``), the YAML or JSON text of a
            pipeline, or the document as a mapping. A string is read as a path when it is a
            single line ending in one of those suffixes, and as the document otherwise.

    Raises:
        PipelineLoadError: the file cannot be read, or the text does not parse.
        PipelineValidationError: the document does not fit the pipeline spec; its issues are
            `ValidationIssue` with paths such as ``steps[2].params``.
    """
    if isinstance(source, Mapping):
        return spec_from_document(source)
    if not isinstance(source, str | os.PathLike):
        raise PipelineLoadError(
            f"<{type(source).__name__}>",
            f"a pipeline is a path, YAML or JSON text, or a mapping; got {type(source).__name__}",
        )
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        return spec_from_document(_read_file(path), str(path))
    text = source
    kind = "json" if text.lstrip().startswith("{") else "yaml"
    return spec_from_document(parse_document(text, kind, "<string>"), "<string>")


def spec_from_document(document: Mapping[str, Any], source: str = "<document>") -> PipelineSpec:
    """Turn a parsed document into a spec, reporting every shape problem at once.

    Raises:
        PipelineValidationError: the document does not fit the pipeline spec, or holds a value
            JSON cannot store (a non-finite number, a lone surrogate, nesting too deep).
    """
    unfit = unstorable(document)
    if unfit:
        raise PipelineValidationError([ValidationIssue(path, message) for path, message in unfit])
    if dialect_of(document) == BUDPIPELINE:
        document = from_budpipeline(document)
    try:
        return PipelineSpec.model_validate(dict(document))
    except PydanticValidationError as exc:
        raise PipelineValidationError(issues_from_pydantic(exc)) from exc


def parse_document(text: str, kind: str, source: str) -> dict[str, Any]:
    """Parse `text` as ``yaml`` or ``json`` into a mapping.

    Raises:
        PipelineLoadError: a syntax error (with its line and column), an empty document or
            one that is not a mapping.
    """
    if kind == "json":
        try:
            document = loads(text)
        except json.JSONDecodeError as exc:
            raise PipelineLoadError(
                source, f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        except RecursionError as exc:
            raise PipelineLoadError(source, "JSON nested too deeply") from exc
        except ValueError as exc:  # An integer of more digits than Python reads.
            raise PipelineLoadError(
                source, f"JSON error: an integer of more than {_MAX_INT_DIGITS:,} digits"
            ) from exc
    else:
        try:
            # _StrictLoader is a SafeLoader: no Python objects from tags.
            document = yaml.load(text, Loader=_StrictLoader)
        except yaml.MarkedYAMLError as exc:
            raise PipelineLoadError(source, _yaml_message(exc)) from exc
        except yaml.YAMLError as exc:
            raise PipelineLoadError(source, f"YAML error: {exc}") from exc
    if document is None:
        raise PipelineLoadError(source, "the document is empty")
    if not isinstance(document, dict):
        kind_name = type(document).__name__
        raise PipelineLoadError(source, f"a pipeline must be a mapping, got {kind_name}")
    return document


def dump_pipeline(spec: PipelineSpec) -> dict[str, Any]:
    """`spec` as a JSON-ready document that `load_pipeline` reads back to an equal spec.

    Fields left at their defaults are left out, so the result reads like what was written;
    a BudPipeline spec keeps them, because its defaults are not Conveyor's.
    """
    if spec.dialect == BUDPIPELINE:
        return spec.model_dump(mode="json", exclude_none=True, by_alias=True)
    return spec.model_dump(mode="json", exclude_defaults=True, by_alias=True)


def issues_from_pydantic(exc: PydanticValidationError) -> list[ValidationIssue]:
    """Pydantic's errors as issues with document paths and plain messages.

    Errors pydantic reports once per member of a union (``condition`` may be a string or a
    boolean) become one issue: ``must be a string or a boolean``.
    """
    grouped: dict[str, list[str]] = {}
    for error in exc.errors():
        path, message = _describe(error)
        messages = grouped.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    issues = []
    for path, messages in grouped.items():
        if len(messages) > 1 and all(m.startswith("must be ") for m in messages):
            message = "must be " + " or ".join(m.removeprefix("must be ") for m in messages)
        else:
            message = "; ".join(messages)
        issues.append(ValidationIssue(path, message))
    return issues


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and Path(text.strip()).suffix.lower() in SUFFIXES


def _read_file(path: Path) -> dict[str, Any]:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(SUFFIXES)
        raise PipelineLoadError(str(path), f"unsupported file type (use {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PipelineLoadError(str(path), "file not found") from exc
    except UnicodeDecodeError as exc:
        raise PipelineLoadError(str(path), f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise PipelineLoadError(str(path), f"cannot read the file: {exc.strerror}") from exc
    return parse_document(text, kind, str(path))


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key that appears twice in one mapping, nesting deeper than
    `MAX_DEPTH` and integers longer than Python reads.

    PyYAML keeps the last value of a repeated key, which silently drops a step's params or a
    whole step when an author copies a block and forgets to rename it. It composes nested
    nodes by recursion, so deep nesting ends in a recursion error, after a long scan.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )  # fmt: skip
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    digits = sum(char.isdigit() for char in str(node.value))
    if digits > _MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {digits:,} digits; at most {_MAX_INT_DIGITS:,}",
            node.start_mark,
        )  # fmt: skip
    return loader.construct_yaml_int(node)


_MAX_INT_DIGITS = 4300
"""Python's own limit for reading an integer from text."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """The document path and a plain message for one pydantic error."""
    model: type[BaseModel] | None = PipelineSpec
    parent: type[BaseModel] | None = None
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif model is not None:
            path = join_path(path, part)
            parent = model
            field = model.model_fields.get(part)
            model = _nested_model(field.annotation) if field is not None else None
        # Past a plain field, pydantic's loc names the union member that was tried
        # ("str", "bool") or the kind of check ("[key]"): not part of the document path.
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        fields = list(parent.model_fields) if parent is not None else []
        last = str(error["loc"][-1])
        close = get_close_matches(last, fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return path, f"unknown field{hint}"
    if kind in ("literal_error", "enum"):
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
        if choices:
            return path, f"must be one of {', '.join(choices)}"
    if kind == "value_error":
        return path, error["msg"].removeprefix("Value error, ")
    template = _MESSAGES.get(kind)
    if template is not None:
        try:
            return path, template.format(**{k: _plain(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            pass
    message = error["msg"]
    return path, message[:1].lower() + message[1:]


def _plain(value: Any) -> Any:
    # Bounds are declared as floats (`gt=0`) but read better as written: "> 0", not "> 0.0".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside `annotation` (``RetryPolicy | None``, ``list[StepSpec]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (list, Union, UnionType):
        for arg in get_args(annotation):
            if arg is not NoneType:
                found = _nested_model(arg)
                if found is not None:
                    return found
    return None
