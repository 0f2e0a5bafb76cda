"""Static analysis of templates: syntax, sandbox rules and the names they read.

Validation needs to know, before anything runs, which context values a template reads
(``steps.fetch.outputs.body``, ``params.count``) and whether it would be refused at render
time. Both come from Jinja2's own parse tree (``ENV.parse``), never from regular expressions,
so a reference is found wherever the grammar allows one: in filters, calls, loops and
subscripts alike.

What counts as a reference: a chain of attribute and constant subscript accesses that starts
at a name the template does not define itself. ``steps['a'].outputs.n`` and
``steps.a.outputs.n`` are the same reference; ``steps[name].outputs`` stops at the computed
subscript and is marked dynamic, because what follows cannot be known before the run.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta, nodes, sandbox
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser

from conveyor.errors import TemplateLimitError
from conveyor.pipeline.template_limits import check_nesting
from conveyor.pipeline.templating import ENV, is_template

# The methods jinja2's immutable sandbox refuses to call on lists, dicts, sets and deques.
_MUTATING = frozenset(
    {
        "add",
        "append",
        "appendleft",
        "clear",
        "difference_update",
        "discard",
        "extend",
        "extendleft",
        "insert",
        "intersection_update",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "setdefault",
        "sort",
        "symmetric_difference_update",
        "update",
    }
)
# Attributes without a leading underscore that the sandbox still refuses (on types,
# generators and coroutines): the same lists jinja2.sandbox checks.
_INTERNAL = frozenset(
    {"mro"}
    | sandbox.UNSAFE_GENERATOR_ATTRIBUTES
    | sandbox.UNSAFE_COROUTINE_ATTRIBUTES
    | sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
_LEXER_OFFSET = re.compile(r" at (\d+)$")
_FIELD_PART = re.compile(r"[.\[]")
# Wrapping a bare condition in "{{ " shifts its first line by this many columns.
_CONDITION_PREFIX = "{{ "


@dataclass(frozen=True)
class Reference:
    """One value a template reads from its context.

    Attributes:
        root: The context name it starts at (``steps``, ``params``, ``item``, ...).
        parts: The constant attribute names and subscripts after the root, in order, up to the
            first computed subscript.
        dynamic: Whether a computed subscript cut the chain short.
        line: The template line it is on (1-based).
    """

    root: str
    parts: tuple[str | int, ...] = ()
    dynamic: bool = False
    line: int = 1

    def __str__(self) -> str:
        text = self.root
        for part in self.parts:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text + ("[...]" if self.dynamic else "")


@dataclass(frozen=True)
class TemplateProblem:
    """Something that stops a template from compiling, or that the sandbox would refuse."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{self.message} (at {where})"


@dataclass(frozen=True)
class TemplateAnalysis:
    """What a template reads and what is wrong with it.

    A template with a syntax error has that one problem and no references. Problems carry a
    line only when the template spans several lines, and a column when Jinja2 says where.
    """

    text: str
    problems: list[TemplateProblem] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


def analyse_template(text: str) -> TemplateAnalysis:
    """Parse `text` and find its references and problems, without rendering it."""
    try:
        check_nesting(text)  # Before parsing: the parser recurses once per level.
        tree = ENV.parse(text)
    except TemplateLimitError as exc:
        return TemplateAnalysis(text, [TemplateProblem(str(exc))])
    except RecursionError:
        return TemplateAnalysis(text, [TemplateProblem("the template nests too deeply")])
    except jinja2.TemplateSyntaxError as exc:
        line, column = _locate_syntax_error(text, exc)
        problem = TemplateProblem(f"template syntax error: {exc.message}", line, column)
        return TemplateAnalysis(text, [problem])
    # Text and `{{ ... }}` only (nearly every template): nothing in it can define a name or
    # fail to compile once parsed, so Jinja2's two passes of code generation are skipped.
    plain = all(isinstance(node, nodes.Output) for node in tree.body)
    free = _expression_names(tree) if plain else _free_names(tree)
    walker = _Walker(free | {"self"}, multiline="\n" in text.strip())
    walker.visit(tree)
    if not walker.problems and not plain:
        # Whatever else Jinja2 refuses when it compiles (a block defined twice, ...).
        try:
            ENV.compile(tree)
        except jinja2.TemplateSyntaxError as exc:
            at = exc.lineno if walker.multiline else None
            walker.problems.append(TemplateProblem(f"template error: {exc.message}", at))
    return TemplateAnalysis(text, walker.problems, walker.references)


def condition_template(condition: str) -> str:
    """The template the engine renders for `condition`.

    A condition without template syntax (``params.deploy and steps.a.status == 'completed'``)
    is read as one expression, exactly as the engine compiles it.
    """
    return condition if is_template(condition) else _CONDITION_PREFIX + condition + " }}"


def analyse_condition(condition: str) -> TemplateAnalysis:
    """Like `analyse_template`, for a step's condition; positions refer to `condition`."""
    text = condition_template(condition)
    analysis = analyse_template(text)
    if text == condition:
        return analysis
    problems = [
        TemplateProblem(p.message, p.line, _condition_column(condition, p.line, p.column))
        for p in analysis.problems
    ]
    return TemplateAnalysis(condition, problems, analysis.references)


def _condition_column(condition: str, line: int | None, column: int | None) -> int | None:
    if line != 1 or column is None:
        return column
    # Back to the condition's own columns; an error at the added " }}" is at its end.
    first_line = condition.split("\n", 1)[0]
    return max(1, min(column - len(_CONDITION_PREFIX), len(first_line) + 1))


def iter_templates(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every template string inside `value` with its path (``params.body.items[2]``)."""
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_templates(item, join_path(path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_templates(item, f"{path}[{index}]")


def join_path(path: str, key: object) -> str:
    """`path` extended by a mapping key: ``.key``, or ``["odd key"]`` when it is not a name."""
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


class _Walker:
    """Collects references and sandbox problems from a parse tree."""

    def __init__(self, free_names: set[str], *, multiline: bool) -> None:
        self.free_names = free_names
        self.multiline = multiline
        self.references: list[Reference] = []
        self.problems: list[TemplateProblem] = []

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            self._chain(node)
            return
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            # `range(3)`, `namespace()`: calling a global is what it is there for, so only
            # a name from the context counts (and is undefined: the context holds data).
            for child in node.iter_child_nodes():
                if child is not node.node or node.node.name in self.free_names:
                    self.visit(child)
            return
        if isinstance(node, nodes.Filter):
            self._filter(node)
        elif isinstance(node, nodes.Test) and node.name not in ENV.tests:
            self._problem(node, f"unknown test {node.name!r}")
        elif isinstance(node, nodes.Call):
            self._call(node)
        elif isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport):
            self._problem(node, "templates cannot extend, include or import other templates")
        for child in node.iter_child_nodes():
            self.visit(child)

    def _chain(self, node: nodes.Node) -> None:
        parts: list[str | int] = []
        names: list[tuple[nodes.Node, str, str]] = []
        dynamic = False
        current = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                names.append((current, current.attr, "attribute"))
                parts.append(current.attr)
            else:
                key = _constant_key(current.arg)
                if key is None:
                    # Whatever followed the computed subscript depends on run-time values.
                    parts.clear()
                    dynamic = True
                    self.visit(current.arg)
                else:
                    if isinstance(key, str):
                        names.append((current, key, "key"))
                    parts.append(key)
            current = current.node
        from_context = isinstance(current, nodes.Name) and current.name in self.free_names
        # Walked from the outside in; reported in reading order.
        for where, name, kind in reversed(names):
            self._check_name(where, name, kind)
            if not from_context and name in _INTERNAL:
                # Data from the context may have a key named so; a global, literal or call
                # result has the Python attribute the sandbox refuses.
                self._problem(where, f"{kind} {name!r} is refused by the sandbox")
        if isinstance(current, nodes.Name):
            bare_global = not (parts or dynamic or from_context) and current.name in ENV.globals
            if current.ctx == "load" and bare_global:
                self._problem(
                    current,
                    f"{current.name!r} is code, not data: call it ({current.name}(...)); "
                    "the sandbox refuses code as output",
                )
            if current.ctx == "load" and from_context:
                self.references.append(
                    Reference(current.name, tuple(reversed(parts)), dynamic, current.lineno)
                )
            return
        self.visit(current)

    def _filter(self, node: nodes.Filter) -> None:
        if node.name not in ENV.filters:
            self._problem(node, f"unknown filter {node.name!r}")
        if node.name == "attr" and node.args:
            name = _constant_key(node.args[0])
            if isinstance(name, str):
                self._check_name(node, name, "attribute")

    def _call(self, node: nodes.Call) -> None:
        target = node.node
        if not isinstance(target, nodes.Getattr):
            return
        if target.attr in _MUTATING:
            self._problem(
                node,
                f"calls {target.attr}(), which modifies its object: refused by the sandbox",
            )
        elif target.attr in ("format", "format_map") and isinstance(target.node, nodes.Const):
            text = target.node.value
            if isinstance(text, str):
                self._check_format(node, text)

    def _check_format(self, node: nodes.Node, text: str) -> None:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(text) if name]
        except ValueError:
            return  # Malformed: str.format raises at render time, nothing escapes.
        for name in fields:
            if any(part.lstrip("]").startswith("_") for part in _FIELD_PART.split(name)[1:]):
                self._problem(
                    node,
                    f"format field {{{name}}} reads a private attribute: refused by the sandbox",
                )

    def _check_name(self, node: nodes.Node, name: str, kind: str) -> None:
        if name.startswith("_"):
            self._problem(node, f"{kind} {name!r} is refused by the sandbox")

    def _problem(self, node: nodes.Node, message: str) -> None:
        self.problems.append(TemplateProblem(message, node.lineno if self.multiline else None))


def _expression_names(tree: nodes.Template) -> set[str]:
    """The names a template of expressions only reads, Jinja2's globals excepted."""
    return {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - set(ENV.globals)


def _free_names(tree: nodes.Template) -> set[str]:
    """The names `tree` reads without defining them, Jinja2's globals excepted."""
    try:
        return set(meta.find_undeclared_variables(tree))
    except jinja2.TemplateSyntaxError:
        # An unknown filter or test stops Jinja2's own analysis; the walker reports it, and
        # this cruder account (ignoring scopes) is enough to check the rest meanwhile.
        names = list(tree.find_all(nodes.Name))
        defined = {n.name for n in names if n.ctx != "load"} | {"loop", "caller"}
        return {n.name for n in names if n.ctx == "load"} - defined - set(ENV.globals)


def _constant_key(node: nodes.Node) -> str | int | None:
    """The subscript or name `node` always evaluates to (``'__cla' ~ 'ss__'`` too), if any."""
    if not isinstance(node, nodes.Expr):
        return None
    try:
        value = node.as_const()
    except nodes.Impossible:
        # Jinja2 raises this for whatever it cannot fold, failures while folding included:
        # not known before the run (and then it fails, or is refused, at render time).
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return value
    return None


def _locate_syntax_error(text: str, exc: jinja2.TemplateSyntaxError) -> tuple[int, int | None]:
    """The line and column of a syntax error.

    Jinja2 reports only the line. The column comes from parsing again over a token stream that
    remembers where each token starts in `text`, then reading the position of the token the
    parser stopped at.
    """
    lexer = ENV.lexer
    seen: list[tuple[Token, int]] = []
    state = {"start": 0, "end": 0, "lexing_failed": 0}

    def raw() -> Iterator[tuple[int, str, str]]:
        position = 0
        tokens = lexer.tokeniter(text, None)
        while True:
            try:
                line, kind, value = next(tokens)
            except StopIteration:
                return
            except jinja2.TemplateSyntaxError:
                state["lexing_failed"] = 1
                raise
            found = text.find(value, position) if value else -1
            if found >= 0:
                position = found
            state["start"] = position
            state["end"] = position = position + (len(value) if found >= 0 else 0)
            yield line, kind, value

    def wrapped() -> Iterator[Token]:
        for token in lexer.wrap(raw(), None):
            seen.append((token, state["start"]))
            yield token

    parser = Parser(ENV, "")
    try:
        parser.stream = TokenStream(wrapped(), None, None)
        parser.parse()
    except jinja2.TemplateSyntaxError as again:
        offset = _error_offset(text, again, parser.stream, seen, state)
    else:  # pragma: no cover - the same text failed a moment ago
        return exc.lineno, None
    while offset < len(text) and text[offset] in " \t":
        offset += 1
    line = text.count("\n", 0, offset) + 1
    if line != exc.lineno:
        return exc.lineno, None
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _error_offset(
    text: str,
    exc: jinja2.TemplateSyntaxError,
    stream: TokenStream,
    seen: list[tuple[Token, int]],
    state: dict[str, int],
) -> int:
    message = exc.message or ""
    if state["lexing_failed"]:
        # The lexer names the offset of a character it cannot read; otherwise it stopped
        # right after the last token it produced.
        match = _LEXER_OFFSET.search(message)
        return int(match.group(1)) if match else state["end"]
    index = next((i for i, (token, _) in enumerate(seen) if token is stream.current), None)
    # After a dot the parser moves on before it complains about what followed the dot.
    step_back = 1 if message.startswith("expected name or number") else 0
    if index is None:
        return seen[-1][1] if step_back and seen else len(text.rstrip())
    return seen[max(0, index - step_back)][1]
