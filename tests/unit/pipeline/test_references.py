"""Template analysis: the references a template reads and where its syntax breaks."""

from __future__ import annotations

import pytest

from conveyor.pipeline.references import (
    Reference,
    analyse_condition,
    analyse_template,
    condition_template,
    iter_templates,
    join_path,
)


def refs(template: str) -> list[str]:
    return [str(r) for r in analyse_template(template).references]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ steps.a.outputs.x }}", ["steps.a.outputs.x"]),
        ("{{ steps['a'].outputs[0]['y'] }}", ["steps.a.outputs[0].y"]),
        ("{{ steps[params.k].outputs.x }}", ["params.k", "steps[...]"]),
        ("{{ steps.a.outputs.list[1:] }}", ["steps.a.outputs.list[...]"]),
        ("{{ params.n | default(run.id) }}", ["params.n", "run.id"]),
        ("{% if item.ok %}{{ index + 1 }}{% endif %}", ["item.ok", "index"]),
        ("{{ f(params.a, k=params.b) }}", ["f", "params.a", "params.b"]),
    ],
)
def test_references_follow_attribute_and_constant_subscript_chains(
    template: str, expected: list[str]
) -> None:
    assert sorted(refs(template)) == sorted(expected)


def test_names_the_template_defines_are_not_references() -> None:
    template = (
        "{% set x = params.a %}{{ x.y }}{% for row in steps.s.outputs.rows %}"
        "{{ row.v }}{{ loop.index }}{% endfor %}{{ range(2) }}"
    )
    assert sorted(refs(template)) == ["params.a", "steps.s.outputs.rows"]


def test_a_reference_knows_its_line() -> None:
    [reference] = analyse_template("a\nb\n{{ params.x }}").references
    assert reference == Reference("params", ("x",), False, 3)


@pytest.mark.parametrize(
    ("template", "message", "line", "column"),
    [
        ("{{ steps.a. }}", "expected name or number", 1, 13),
        ("x {% foo %}", "Encountered unknown tag 'foo'.", 1, 6),
        ("{{ a + }}", "unexpected 'end of print statement'", 1, 8),
        ("line1\n  {{ a b }}", "expected token 'end of print statement', got 'b'", 2, 8),
        ("{{ 'abc }}", "unexpected char", 1, 4),
        ("{{ a.b }", "unexpected '}'", 1, 8),
        ("{% if x %}", "Unexpected end of template", 1, 11),
    ],
)
def test_a_syntax_error_has_a_line_and_column(
    template: str, message: str, line: int, column: int
) -> None:
    analysis = analyse_template(template)
    [problem] = analysis.problems
    assert message in problem.message
    assert (problem.line, problem.column) == (line, column)
    assert analysis.references == []


def test_conditions_without_braces_are_expressions() -> None:
    assert condition_template("params.a") == "{{ params.a }}"
    assert condition_template("{{ params.a }}") == "{{ params.a }}"
    analysis = analyse_condition("params.a and steps.b.status == 'completed'")
    assert [str(r) for r in analysis.references] == ["params.a", "steps.b.status"]
    [problem] = analyse_condition("params.a ==").problems
    assert problem.column == 12


def test_problems_in_one_line_templates_carry_no_line() -> None:
    [problem] = analyse_template("{{ x.__class__ }}").problems
    assert str(problem) == "attribute '__class__' is refused by the sandbox"
    [problem] = analyse_template("ok\n{{ x.__class__ }}").problems
    assert str(problem) == "attribute '__class__' is refused by the sandbox (at line 2)"


def test_iter_templates_walks_nested_values() -> None:
    value = {"a": "{{ x }}", "b": ["plain", {"c": "{% if y %}{% endif %}"}], "d e": "{{ z }}"}
    assert list(iter_templates(value, "params")) == [
        ("params.a", "{{ x }}"),
        ("params.b[1].c", "{% if y %}{% endif %}"),
        ("params['d e']", "{{ z }}"),
    ]


def test_join_path() -> None:
    assert join_path("", "steps") == "steps"
    assert join_path("a", "b") == "a.b"
    assert join_path("a", "b c") == "a['b c']"
    assert join_path("a", 3) == "a[3]"
