"""Sandboxed rendering: native types, strict undefined names and refused escapes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conveyor.actions import ActionRegistry
from conveyor.errors import SandboxViolationError, TemplateError
from conveyor.pipeline import compile_value, render_value, validate_pipeline
from conveyor.pipeline.templating import contains_template, is_template, single_expression
from tests.unit.pipeline.actions import document

CONTEXT: dict[str, Any] = {
    "params": {"n": 3, "name": "Ada", "flag": False},
    "steps": {"a": {"outputs": {"items": [1, 2], "keys": "k", "body": {"x": 1}}}},
    "run": {"id": "r1", "pipeline": "p"},
}


# ---------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ params.n }}", 3),
        ("{{ params.n * 1.5 }}", 4.5),
        ("{{ params.flag }}", False),
        ("{{ steps.a.outputs.items }}", [1, 2]),
        ("{{ steps.a.outputs.body }}", {"x": 1}),
        ("{{ none }}", None),
        ("  {{ params.name }}  ", "Ada"),
        ("{{ steps.a.outputs.items | length }}", 2),
    ],
)
def test_one_expression_keeps_its_native_type(template: str, expected: Any) -> None:
    result = render_value(template, CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ params.name }}", "Hello Ada"),
        ("{{ params.n }}{{ params.n }}", "33"),
        ("{% if params.flag %}yes{% else %}no{% endif %}", "no"),
        ("{% for i in steps.a.outputs.items %}{{ i }},{% endfor %}", "1,2,"),
        ("{{ run.id }}/{{ run.pipeline }}", "r1/p"),
    ],
)
def test_anything_else_renders_to_a_string(template: str, expected: str) -> None:
    assert render_value(template, CONTEXT) == expected


def test_structures_render_each_template_inside() -> None:
    value = {"a": ["{{ params.n }}", "x"], "b": {"c": "n={{ params.n }}"}, "d": 4}
    render = compile_value(value)
    assert render(CONTEXT) == {"a": [3, "x"], "b": {"c": "n=3"}, "d": 4}


def test_values_without_templates_come_back_as_they_are() -> None:
    value = {"a": [1, "{not a template}"]}
    assert compile_value(value)(CONTEXT) is value
    assert render_value("plain", {}) == "plain"
    assert render_value(7, {}) == 7


def test_a_mapping_key_wins_over_a_method_of_the_same_name() -> None:
    assert render_value("{{ steps.a.outputs.keys }}", CONTEXT) == "k"
    assert render_value("{{ steps.a.outputs.items }}", CONTEXT) == [1, 2]


def test_template_helpers() -> None:
    assert is_template("{{ x }}") and is_template("{% if x %}{% endif %}")
    assert not is_template("{ x }") and not is_template(3)
    assert contains_template({"a": [1, {"b": "{{ x }}"}]})
    assert not contains_template({"a": [1, "b"]})
    assert single_expression(" {{ a.b }} ") == " a.b "
    assert single_expression("{{ a }} and {{ b }}") is None


# ---------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    "template",
    ["{{ nope }}", "{{ params.missing }}", "x {{ params.missing }}", "{{ steps.a.outputs.z.y }}"],
)
def test_undefined_names_are_errors_not_empty_strings(template: str) -> None:
    with pytest.raises(TemplateError, match=r"undefined|has no attribute"):
        render_value(template, CONTEXT)


def test_a_syntax_error_is_a_template_error_when_compiled() -> None:
    with pytest.raises(TemplateError, match="syntax error at line 2"):
        compile_value("line one\n{% if %}")


def test_a_runtime_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="division by zero"):
        render_value("{{ params.n / 0 }}", CONTEXT)


# ---------------------------------------------------------------------------- the sandbox

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "x {{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ request.application.__globals__ }}",
    "{{ config.items() }}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{{ ''['__class__'] }}",
    "{{ ''['__cla' ~ 'ss__'] }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ x|attr('__class__') }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ 'a'|attr('__cl' ~ 'ass__') }}",
    "{{ [].pop() }}",
    "{{ {}.update(a=1) }}",
    "{{ steps.a.outputs.items.append(3) }}",
    "{{ params.clear() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '{0[__class__]}'.format({}) }}",
    "{{ dict.mro() }}",
    "{{ (1).__class__ }}",
    "{{ ''.__doc__ }}",
    "{% set n = namespace() %}{{ n.__dict__ }}",
    "{{ range.__self__ }}",
    "{{ lipsum }}",
    "{{ cycler }}",
    "{{ 'a'.upper }}",
    "x {{ range }}",
    "{{ [lipsum] }}",
]
FUNCTION_REPR = re.compile(r"<(function|built-in|bound method|method)")


@pytest.mark.parametrize("payload", ESCAPES)
def test_known_sandbox_escapes_are_refused_at_render_time(payload: str) -> None:
    try:
        result = render_value(payload, CONTEXT)
    except (SandboxViolationError, TemplateError):
        return
    text = str(result)
    assert "class" not in text
    assert not FUNCTION_REPR.search(text)
    pytest.fail(f"{payload!r} rendered {text!r}")


@pytest.mark.parametrize(
    "payload",
    ["{{ ''.__class__ }}", "{{ [].pop() }}", "{{ '{0.__class__}'.format(1) }}", "{{ lipsum }}"],
)
def test_attribute_escapes_raise_the_sandbox_error(payload: str) -> None:
    with pytest.raises(SandboxViolationError, match="refused by the sandbox"):
        render_value(payload, CONTEXT)


@pytest.mark.parametrize("payload", ESCAPES)
def test_validation_flags_every_escape(payload: str, registry: ActionRegistry) -> None:
    report = validate_pipeline(
        document(
            {"id": "a", "action": "dynamic", "params": {"values": {}}},
            {"id": "b", "action": "echo", "depends_on": ["a"], "params": {"message": payload}},
            parameters=[{"name": "n"}, {"name": "name"}, {"name": "flag"}],
        ),
        registry,
    )
    if payload == "{{ 'a'.upper }}":
        # A method is harmless to read and refused only as output: nothing to flag before
        # the run, and the render-time check above covers it.
        assert report.ok
        return
    assert {issue.path for issue in report.errors} == {"steps[1].params.message"}
    assert any("sandbox" in i.message or "undefined name" in i.message for i in report.errors)
