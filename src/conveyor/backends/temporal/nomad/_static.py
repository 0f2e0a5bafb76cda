"""The input type of an entry point's workflow, found without importing the workflow's module.

An `ActionEntryPoint.load()` imports the workflow and its activities, and activities may import
a queue's optional dependencies (``torch`` on a GPU queue). A process that only lists the
catalog, or a worker of another queue, must not need them, yet the catalog shows the
workflow's params. So the sources are read instead: `load()`'s own source names the workflow
class and the module it comes from (``from pkg.workflows import ExampleWorkflow`` and
``Action(workflow=ExampleWorkflow, ...)``), that module's source names the type of the
``@workflow.run`` argument and where it is imported from, and only that module (the models,
which need Pydantic alone) is imported.

Anything else (the input type defined in the workflows module itself, a workflow chosen at run
time) gives None, and the caller falls back to loading the action.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass(frozen=True)
class WorkflowTypes:
    """The run argument's type and the run method's return annotation (None when unknown)."""

    input_type: Any
    return_type: Any


def read_workflow_types(load: Callable[..., Any]) -> WorkflowTypes | None:
    """The types of the workflow `load` builds its `Action` with, importing only their modules.

    Returns None when the sources do not say them plainly.
    """
    try:
        return _read(load)
    except (OSError, SyntaxError, ImportError, AttributeError, TypeError, ValueError):
        return None


def _read(load: Callable[..., Any]) -> WorkflowTypes | None:
    function = _parse_function(load)
    if function is None:
        return None
    module_name: str = load.__module__
    package = module_name if _is_package(module_name) else module_name.rpartition(".")[0]
    local = dict(_imported_names(function, package))
    name = _workflow_argument(function)
    if name is None:
        return None
    if name in local:
        workflow_module, class_name = local[name]
    elif name in load.__globals__:
        # Imported at the top of the entry point's module: it is already loaded.
        return _from_class(load.__globals__[name])
    else:
        return None
    loaded = sys.modules.get(workflow_module)
    if loaded is not None and hasattr(loaded, class_name):
        return _from_class(getattr(loaded, class_name))
    return _from_source(workflow_module, class_name)


def _parse_function(load: Callable[..., Any]) -> ast.FunctionDef | None:
    source = textwrap.dedent(inspect.getsource(load))
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    return first if isinstance(first, ast.FunctionDef) else None


def _is_package(module_name: str) -> bool:
    module = sys.modules.get(module_name)
    return module is not None and hasattr(module, "__path__")


def _imported_names(node: ast.AST, package: str) -> Iterator[tuple[str, tuple[str, str]]]:
    """Each name `from m import x [as y]` binds in `node`, as (y, (m, x)), relative ones
    resolved against `package`."""
    for child in _walk_statements(node):
        if isinstance(child, ast.ImportFrom):
            relative = "." * child.level + (child.module or "")
            module = importlib.util.resolve_name(relative, package) if child.level else relative
            for alias in child.names:
                yield alias.asname or alias.name, (module, alias.name)


def _walk_statements(node: ast.AST) -> Iterator[ast.AST]:
    """The statements of `node`, into blocks (`with`, `if`, `try`) but not into definitions."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
        ):
            yield from _walk_statements(child)


def _workflow_argument(function: ast.FunctionDef) -> str | None:
    """The name passed as `workflow=` to the `Action(...)` call in `function`."""
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        called = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
        if called != "Action":
            continue
        for keyword in node.keywords:
            if keyword.arg == "workflow" and isinstance(keyword.value, ast.Name):
                return keyword.value.id
    return None


def _from_class(cls: Any) -> WorkflowTypes | None:
    definition = workflow._Definition.from_class(cls) if isinstance(cls, type) else None
    if definition is None:
        return None
    from conveyor.backends.temporal.nomad._action import run_input_type

    return WorkflowTypes(run_input_type(definition.run_fn, "?"), definition.ret_type)


def _from_source(module_name: str, class_name: str) -> WorkflowTypes | None:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as file:
        tree = ast.parse(file.read(), filename=spec.origin)
    package = module_name if spec.submodule_search_locations else module_name.rpartition(".")[0]
    imported = dict(_imported_names(tree, package))
    modules = dict(_imported_modules(tree))
    run = _run_method(tree, class_name)
    if run is None or len(run.args.args) != 2 or run.args.args[1].annotation is None:
        return None
    input_type = _resolve(run.args.args[1].annotation, imported, modules)
    if input_type is None:
        return None
    return_type = _resolve(run.returns, imported, modules) if run.returns is not None else None
    return WorkflowTypes(input_type, return_type)


def _imported_modules(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """Each name `import a.b [as c]` binds, as (c or a, module)."""
    for child in _walk_statements(tree):
        if isinstance(child, ast.Import):
            for alias in child.names:
                if alias.asname:
                    yield alias.asname, alias.name
                else:
                    yield alias.name.partition(".")[0], alias.name.partition(".")[0]


def _run_method(tree: ast.Module, class_name: str) -> ast.AsyncFunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for member in node.body:
                if isinstance(member, ast.AsyncFunctionDef) and any(
                    _is_run_decorator(d) for d in member.decorator_list
                ):
                    return member
    return None


def _is_run_decorator(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "run") or (
        isinstance(node, ast.Name) and node.id == "run"
    )


def _resolve(
    annotation: ast.expr, imported: dict[str, tuple[str, str]], modules: dict[str, str]
) -> Any:
    """The object an annotation names, when it is imported from another module (else None)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    if isinstance(annotation, ast.Name) and annotation.id in imported:
        module, name = imported[annotation.id]
        return getattr(importlib.import_module(module), name)
    if (
        isinstance(annotation, ast.Attribute)
        and isinstance(annotation.value, ast.Name)
        and annotation.value.id in modules
    ):
        return getattr(importlib.import_module(modules[annotation.value.id]), annotation.attr)
    return None
