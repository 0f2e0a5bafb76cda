"""Jinja2 templates for params, conditions and outputs, always in the immutable sandbox.

A string that is exactly one expression (``"{{ steps.a.outputs.n }}"``) renders to the native
value (a number stays a number, a list a list); anything else renders to a string. Undefined
names are errors, never "". Templates are compiled once per pipeline and kept, because the
engine renders on its hot path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Literal

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined
from jinja2.exceptions import SecurityError

from conveyor.errors import ConveyorError, SandboxViolationError, TemplateError, TemplateLimitError
from conveyor.pipeline.template_limits import (
    LimitedSandbox,
    check_nesting,
    check_result,
    evaluation,
)

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)

Renderer = Callable[[Mapping[str, Any]], Any]


class _DataSandbox(LimitedSandbox):
    """The bounded sandbox, with `a.b` reading a mapping's key before its attributes.

    Pipelines address data (`steps.list.outputs.items`), so a key named like a dict method
    (`items`, `keys`, `values`) must give the data, not the bound method.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def _data_only(value: Any) -> Any:
    """Refuse a function, class or module as a template's result.

    The sandbox already refuses every path from such an object to anything dangerous, but its
    repr leaks internals (names, memory addresses) and a param holding one is never what the
    author meant: `{{ lipsum }}` for `{{ lipsum() }}`, `{{ params.items }}` for a missing key.
    """
    if _is_code(value):
        raise SecurityError(f"a template cannot output code ({type(value).__name__})")
    if isinstance(value, list | tuple):
        for item in value:
            _data_only(item)
    elif isinstance(value, dict):
        for item in value.values():
            _data_only(item)
    return value


def _is_code(value: Any) -> bool:
    if isinstance(value, jinja2.Undefined):
        return False  # Callable, but rendering it raises the undefined error it carries.
    return isinstance(value, type | ModuleType) or callable(value)


ENV = _DataSandbox(undefined=StrictUndefined, autoescape=False, finalize=_data_only)
"""The sandboxed environment templates are compiled in."""

LENIENT_ENV = _DataSandbox(undefined=ChainableUndefined, autoescape=False, finalize=_data_only)
"""The same sandbox for BudPipeline pipelines, whose templates read an undefined name (and
anything under it) as empty instead of failing."""


def is_template(value: Any) -> bool:
    """Whether `value` is a string holding Jinja2 syntax."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def contains_template(value: Any) -> bool:
    """Whether `value`, or anything nested in it, is a template."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(contains_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_template(v) for v in value)
    return False


def single_expression(text: str) -> str | None:
    """The expression of a string that is exactly one ``{{ ... }}``, else None."""
    match = _SINGLE_EXPR.match(text)
    if match is None:
        return None
    expr = match.group("expr")
    if "{{" in expr or "}}" in expr or "{%" in expr:
        return None
    return expr


def compile_value(value: Any, *, lenient: bool = False) -> Renderer:
    """Compile `value` (any JSON-like structure) into a function of the template context.

    Args:
        value: The structure; its strings with template syntax are compiled.
        lenient: Render an undefined name as empty (BudPipeline's semantics) instead of
            failing.

    Raises:
        TemplateError: a template in it does not compile (the message gives the line).
    """
    if isinstance(value, str):
        if not is_template(value):
            return lambda _ctx: value
        return _compile_string(value, LENIENT_ENV if lenient else ENV)
    if isinstance(value, dict):
        parts = {key: compile_value(item, lenient=lenient) for key, item in value.items()}
        if not any(contains_template(item) for item in value.values()):
            return lambda _ctx: value
        return lambda ctx: {key: render(ctx) for key, render in parts.items()}
    if isinstance(value, list):
        items = [compile_value(item, lenient=lenient) for item in value]
        if not contains_template(value):
            return lambda _ctx: value
        return lambda ctx: [render(ctx) for render in items]
    return lambda _ctx: value


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Compile and render `value` once (prefer `compile_value` for repeated use)."""
    return compile_value(value)(context)


def _compile_string(text: str, env: _DataSandbox) -> Renderer:
    expr = single_expression(text)
    check_nesting(text)
    try:
        if expr is not None:
            compiled = env.compile_expression(expr, undefined_to_none=False)

            def render_expression(ctx: Mapping[str, Any]) -> Any:
                with _translated(text), evaluation():
                    result = compiled(**ctx)
                    if isinstance(result, jinja2.Undefined):
                        # StrictUndefined raises with its message; the lenient one is "".
                        return str(result)
                    # compile_expression bypasses the environment's finalize.
                    return check_result(_data_only(result))

            return render_expression
        template = env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error at line {exc.lineno}: {exc.message}", template=text
        ) from exc
    except (RecursionError, MemoryError) as exc:
        # The parser and Python's compiler recurse per level of nesting.
        raise TemplateError("the template nests too deeply to compile", template=text) from exc

    def render_template(ctx: Mapping[str, Any]) -> Any:
        with _translated(text), evaluation():
            return template.render(ctx)

    return render_template


class _translated:
    """Turns Jinja2's runtime errors into Conveyor's, keeping the template text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        text = self.text
        if exc is None:
            return False
        if isinstance(exc, TemplateLimitError):
            raise TemplateLimitError(
                f"template {_shown(text)} stopped: {exc}", limit=exc.limit, template=text
            ) from exc
        if isinstance(exc, RecursionError):
            raise TemplateError(
                f"template {_shown(text)} failed: it recursed too deeply", template=text
            ) from exc
        if isinstance(exc, SecurityError):
            raise SandboxViolationError(
                f"template refused by the sandbox: {exc}", template=text
            ) from exc
        if isinstance(exc, jinja2.UndefinedError):
            raise TemplateError(f"undefined in template {text!r}: {exc}", template=text) from exc
        if isinstance(exc, _RENDER_ERRORS):
            raise TemplateError(f"template {text!r} failed: {exc}", template=text) from exc
        if isinstance(exc, NameError) and exc.name in ("inf", "nan"):
            # Jinja2 folds constant arithmetic when compiling and writes an overflow as the
            # bare name `inf`, which the compiled code then cannot find.
            raise TemplateError(
                f"template {text!r} failed: the result is not a finite number", template=text
            ) from exc
        if isinstance(exc, Exception) and not isinstance(exc, ConveyorError):
            # A user's template may fail its step, never the engine or a workflow task.
            raise TemplateError(
                f"template {text!r} failed: {type(exc).__name__}: {exc}", template=text
            ) from exc
        return False


def _shown(text: str) -> str:
    """The template, as quoted in an error (a long one cut short)."""
    return repr(text if len(text) <= 120 else text[:117] + "...")


_RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError)
