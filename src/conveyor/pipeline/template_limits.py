"""Bounds on every template evaluation: time, output size, arithmetic, loops, calls and nesting.

The sandbox keeps a template from reaching anything dangerous, but not from costing too much:
``{{ 'a' * 10**9 }}`` asks for a gigabyte, ``{{ 10**(10**7) }}`` for seconds of big-integer
arithmetic, nested loops for billions of iterations, and a macro that calls itself for a
recursion error. Each of those is refused here before it is computed, with an error that
names the limit and the setting that raises it:

- ``*``, ``**``, ``+`` and ``%`` are intercepted (the sandbox's `intercepted_binops`), and
  refused when their result would be longer than `max_output_chars` or an integer of more than
  `max_integer_digits` digits. Intercepted operators are never folded at compile time either,
  so validating a pipeline computes none of them.
- ``range()`` is capped at `max_range` items, and every ``{% for %}`` loop draws on one budget
  of `max_loop_iterations` per evaluation (the loop's iterable is wrapped when compiled).
- Calls (macros, ``loop()`` of a recursive loop) nest at most `max_call_depth` deep.
- Brackets nest at most `max_nesting` deep in a template's text (checked before parsing: a
  parser recursing 200 parentheses deep fails with a recursion error).
- The filters and string methods that grow text by an argument (``center``, ``indent``,
  ``join``, ``replace``, ``ljust``, ...) are checked before they run; what a template outputs,
  and any string or list a call returns, is checked against `max_output_chars`.
- Every loop iteration, call and operator checks the evaluation's deadline
  (`timeout_seconds`), the bound of last resort.

Evaluations stay in-process (the engine renders on its hot path, in microseconds): these
checks are what keeps one evaluation from holding its thread, or the event loop, for long.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conveyor.errors import TemplateLimitError

__all__ = [
    "TemplateLimits",
    "check_nesting",
    "configure_template_limits",
    "evaluation",
    "template_limits",
    "untimed",
]


@dataclass(frozen=True)
class TemplateLimits:
    """The bounds of one template evaluation; each is a setting (``CONVEYOR_TEMPLATE_*``)."""

    timeout_seconds: float = 1.0
    """How long one evaluation may run (`template_timeout_seconds`)."""
    max_output_chars: int = 1_000_000
    """The longest string or list an evaluation may make or output (`template_max_output_chars`)."""
    max_integer_digits: int = 4300
    """The most digits of an integer arithmetic may make (`template_max_integer_digits`);
    Python's own limit for turning an integer into text."""
    max_range: int = 10_000
    """The most items one ``range()`` may give (`template_max_range`)."""
    max_loop_iterations: int = 100_000
    """The most ``{% for %}`` iterations of one evaluation, all loops together
    (`template_max_loop_iterations`)."""
    max_call_depth: int = 50
    """How deep macro calls may nest (`template_max_call_depth`)."""
    max_nesting: int = 50
    """How deep brackets may nest in a template's text (`template_max_nesting`)."""


_limits = TemplateLimits()


def template_limits() -> TemplateLimits:
    """The limits in force."""
    return _limits


def configure_template_limits(limits: TemplateLimits) -> None:
    """Put `limits` in force for every later evaluation in this process.

    One set per process, like the sandbox itself: the service and the engine set it from
    their settings when they are made.
    """
    global _limits
    _limits = limits


def _over(limit: str, message: str) -> TemplateLimitError:
    value = getattr(_limits, limit)
    shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return TemplateLimitError(
        f"{message}: more than the limit template_{limit} ({shown})", limit=f"template_{limit}"
    )


# ------------------------------------------------------------------ the budget of one evaluation


class _Budget:
    __slots__ = ("deadline", "depth", "iterations", "limits")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        timed = not getattr(_local, "untimed", False)
        self.deadline = time.monotonic() + limits.timeout_seconds if timed else float("inf")
        self.iterations = limits.max_loop_iterations
        self.depth = 0


_local = threading.local()


def _budget() -> _Budget:
    budget: _Budget | None = getattr(_local, "budget", None)
    # Outside `evaluation()` (a compiled template called by hand): a budget for this check.
    return budget if budget is not None else _Budget(_limits)


@contextmanager
def evaluation() -> Iterator[None]:
    """One evaluation's budget: its deadline, loop iterations and call depth.

    An evaluation inside another (a template rendered by a call made from a template) shares
    the outer one's budget.
    """
    if getattr(_local, "budget", None) is not None:
        yield
        return
    _local.budget = _Budget(_limits)
    try:
        yield
    finally:
        _local.budget = None


@contextmanager
def untimed() -> Iterator[None]:
    """Evaluations in this block have no deadline; every other limit holds.

    For code that must decide the same way each time it runs: a Temporal workflow replays its
    transitions, and a wall-clock bound could fail on the replay what passed the first time.
    """
    before = getattr(_local, "untimed", False)
    _local.untimed = True
    try:
        yield
    finally:
        _local.untimed = before


def _tick(budget: _Budget) -> None:
    if time.monotonic() > budget.deadline:
        raise _over("timeout_seconds", "the template ran too long")


# ------------------------------------------------------------------ sizes


def _length(value: Any) -> int:
    """The size a value counts for: characters of text, items of a sequence, else 0."""
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return 0


def _check_length(length: int, what: str) -> None:
    if length > _limits.max_output_chars:
        raise _over("max_output_chars", f"{what} would be {length:,} long")


def _digits(bits: int) -> int:
    return int(bits * 0.30103) + 1


def _check_bits(bits: int, what: str) -> None:
    if _digits(bits) > _limits.max_integer_digits:
        raise _over("max_integer_digits", f"{what} would have about {_digits(bits):,} digits")


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included: True * 'a' is 'a'.


def _check_multiply(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        _check_bits(abs(left).bit_length() + abs(right).bit_length(), "the product")
    elif _is_int(left) and _length(right):
        _check_length(_length(right) * max(left, 0), "the repeated value")
    elif _is_int(right) and _length(left):
        _check_length(_length(left) * max(right, 0), "the repeated value")


def _check_power(base: Any, exponent: Any) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        _check_bits(abs(base).bit_length() * exponent, "the power")


def _check_add(left: Any, right: Any) -> None:
    if _length(left) and _length(right):
        _check_length(_length(left) + _length(right), "the sum")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


def _check_percent(left: Any, right: Any) -> None:
    if not isinstance(left, str):
        return
    widths = [int(n) for m in _PERCENT_SPEC.finditer(left) for n in m.groups() if n and n != "*"]
    args = right if isinstance(right, tuple) else (right,)
    if any(spec == "*" for m in _PERCENT_SPEC.finditer(left) for spec in m.groups()):
        widths += [a for a in args if _is_int(a)]
    _check_length(len(left) + sum(widths), "the formatted text")


_BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "*": _check_multiply,
    "**": _check_power,
    "+": _check_add,
    "%": _check_percent,
}


# ------------------------------------------------------------------ text that grows by an argument


def _width_args(args: Iterable[Any], kwargs: Mapping[str, Any]) -> int:
    return max([a for a in (*args, *kwargs.values()) if _is_int(a)], default=0)


def _check_growth(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a call of a growing string method or filter before it allocates."""
    if name in ("ljust", "rjust", "center", "zfill", "wordwrap"):
        _check_length(_length(value) + _width_args(args, kwargs), f"the result of {name}")
    elif name in ("indent", "expandtabs"):
        lines = value.count("\n") + 1 if isinstance(value, str) else 1
        width = _width_args(args, kwargs) if name == "expandtabs" else _indent_width(args, kwargs)
        tabs = value.count("\t") if name == "expandtabs" and isinstance(value, str) else lines
        _check_length(_length(value) + tabs * width, f"the result of {name}")
    elif name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        count = value.count(old) if old else len(value) + 1
        _check_length(len(value) + count * max(len(new) - len(old), 0), "the result of replace")
    elif name == "join" and isinstance(value, str) and args and isinstance(args[0], Iterable):
        items = args[0] if isinstance(args[0], list | tuple) else list(args[0])
        joined = len(value) * max(len(items) - 1, 0) + sum(_length(str(i)) for i in items)
        _check_length(joined, "the joined text")


def _indent_width(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    width = args[0] if args else kwargs.get("width", 4)
    return len(width) if isinstance(width, str) else int(width) if _is_int(width) else 4


_GROWING = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "indent", "wordwrap"}
)


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` (a filter), checked before it runs and its result after."""
    passes = getattr(function, "jinja_pass_arg", None)

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # A filter that takes the context or environment first gets it before its value.
        offset = 1 if passes is not None else 0
        value, rest = args[offset], args[offset + 1 :]
        if name == "join":
            # The filter's separator comes first and the items are its value.
            items = list(value) if not isinstance(value, list | tuple) else value
            separator = rest[0] if rest else kwargs.get("d", "")
            _check_growth("join", str(separator), (items,), {})
            args = (*args[:offset], items, *rest)
        else:
            _check_growth(name, value, rest, kwargs)
        result = function(*args, **kwargs)
        _check_length(_length(result), f"the result of {name}")
        return result

    return guarded


def guarded_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """`filters`, with those that grow text by an argument checked first."""
    guarded = dict(filters)
    for name in ("center", "indent", "join", "replace", "wordwrap"):
        if name in guarded:
            guarded[name] = _guard_filter(name, guarded[name])
    return guarded


# ------------------------------------------------------------------ loops


def limited_range(*args: int) -> range:
    """``range()``, refused past `max_range` items."""
    made = range(*args)
    if len(made) > _limits.max_range:
        raise _over("max_range", f"range() of {len(made):,} items")
    return made


def loop_items(iterable: Iterable[Any]) -> Iterator[Any]:
    """Each item of a ``{% for %}`` loop's iterable, drawn from the evaluation's budget."""
    budget = _budget()
    for item in iterable:
        budget.iterations -= 1
        if budget.iterations < 0:
            raise _over("max_loop_iterations", "the loops ran too many iterations")
        if not budget.iterations & 0x3F:
            _tick(budget)
        yield item


_LOOP_GUARD = f"{__name__}.loop_items"


def _guard_loops(tree: nodes.Template) -> None:
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(
            nodes.ImportedName(_LOOP_GUARD, lineno=loop.lineno),
            [loop.iter],
            [],
            None,
            None,
            lineno=loop.lineno,
        )


# ------------------------------------------------------------------ nesting


_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())


def check_nesting(text: str) -> None:
    """Refuse text whose brackets nest deeper than `max_nesting` (counted without parsing).

    Raises:
        TemplateLimitError: it nests too deeply.
    """
    depth = deepest = 0
    for char in text:
        if char in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSE:
            depth = max(depth - 1, 0)
    # `{{` and `{%` open a brace of their own; allow for them.
    if deepest - 1 > _limits.max_nesting:
        raise _over("max_nesting", f"brackets nest {deepest - 1} deep")


# ------------------------------------------------------------------ the environment


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every evaluation bounded (see the module docstring)."""

    intercepted_binops = frozenset(_BINOP_CHECKS)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = guarded_filters(self.filters)
        self.globals["range"] = limited_range

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick(_budget())
        _BINOP_CHECKS[operator](left, right)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = _budget()
        _tick(budget)
        name = getattr(__obj, "__name__", "")
        if name in _GROWING and isinstance(getattr(__obj, "__self__", None), str):
            _check_growth(name, __obj.__self__, args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > budget.limits.max_call_depth:
                raise _over("max_call_depth", f"calls nest {budget.depth} deep")
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        _check_length(_length(result), "a call's result")
        return result

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        _guard_loops(source)
        return super()._generate(source, name, filename, defer_init=defer_init)

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """The rendered text, refused once it passes `max_output_chars`."""
        budget = _budget()
        out: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > budget.limits.max_output_chars:
                raise _over("max_output_chars", "the rendered text is too long")
            _tick(budget)
            out.append(part)
        return "".join(out)


def check_result(value: Any) -> Any:
    """Refuse a native result (a single-expression template's) larger than allowed."""
    _check_length(_size(value, _limits.max_output_chars + 1), "the result")
    return value


def _size(value: Any, cap: int) -> int:
    """Characters and items in `value`, counted until `cap` is passed."""
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.values())
    return total
