"""Validating whole pipelines: every check, each with its exact path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from conveyor.actions import ActionDefinition, ActionRegistry
from conveyor.errors import PipelineValidationError, UnknownActionError
from conveyor.pipeline import (
    ValidationIssue,
    ValidationReport,
    load_pipeline,
    validate_pipeline,
)
from tests.unit.pipeline.actions import definitions, document


def emit(step_id: str = "a", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "emit", "params": {"count": 1}, **fields}


def echo(step_id: str, message: Any = "hi", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "echo", "params": {"message": message}, **fields}


def check(registry: ActionRegistry, *steps: dict[str, Any], **fields: Any) -> ValidationReport:
    return validate_pipeline(document(*steps, **fields), registry)


def errors(report: ValidationReport) -> dict[str, str]:
    """Each error path with its messages joined, for exact path assertions."""
    found: dict[str, str] = {}
    for issue in report.errors:
        found[issue.path] = " | ".join(filter(None, [found.get(issue.path), issue.message]))
    return found


def warnings(report: ValidationReport) -> dict[str, str]:
    return {issue.path: issue.message for issue in report.warnings}


def only_error(report: ValidationReport, path: str, *fragments: str) -> None:
    found = errors(report)
    assert list(found) == [path], report.errors
    for fragment in fragments:
        assert fragment in found[path]


# ---------------------------------------------------------------------------- results


def test_a_sound_pipeline_has_no_issues(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("a", params={"count": "{{ params.n }}", "label": "x", "mode": "slow"}),
        echo("b", "got {{ steps.a.outputs.value }} of {{ run.pipeline }}", depends_on=["a"]),
        echo("c", "{{ steps.a.outputs.items }}", depends_on=["b"]),
        parameters=[{"name": "n", "type": "integer", "default": 2}],
        outputs={"value": "{{ steps.c.outputs.message }}"},
    )
    assert report.ok
    assert report.errors == [] and report.warnings == []
    report.raise_for_errors()


def test_issue_and_report_shapes() -> None:
    issue = ValidationIssue("steps[0].id", "bad")
    assert str(issue) == "steps[0].id: bad"
    assert issue.severity == "error"
    assert str(ValidationIssue("", "whole")) == "whole"
    report = ValidationReport(errors=[issue], warnings=[ValidationIssue("x", "y", "warning")])
    assert not report.ok
    with pytest.raises(PipelineValidationError) as caught:
        report.raise_for_errors()
    assert caught.value.issues == [issue]
    assert ValidationReport(warnings=[ValidationIssue("x", "y", "warning")]).ok


def test_a_spec_and_a_document_validate_alike(registry: ActionRegistry) -> None:
    doc = document(echo("a", "{{ steps.zz.outputs.x }}"))
    assert validate_pipeline(doc, registry) == validate_pipeline(load_pipeline(doc), registry)


def test_a_document_with_shape_problems_reports_them(registry: ActionRegistry) -> None:
    report = validate_pipeline({"name": "x", "steps": [{"id": "a"}]}, registry)
    assert errors(report) == {"steps[0].action": "is required"}


def test_any_object_with_get_and_types_serves_as_the_registry() -> None:
    by_type = {d.type: d for d in definitions()}

    class Lookup:
        def get(self, action_type: str, /) -> ActionDefinition:
            try:
                return by_type[action_type]
            except KeyError:
                raise UnknownActionError(action_type) from None

        def types(self) -> Iterable[str]:
            return by_type.keys()

    report = validate_pipeline(document(echo("a"), {"id": "b", "action": "ech"}), Lookup())
    assert errors(report).keys() == {"steps[1].action"}


# ---------------------------------------------------------------------------- actions and params


def test_unknown_action_suggests_close_matches(registry: ActionRegistry) -> None:
    report = check(registry, emit("a"), {"id": "b", "action": "emitt"})
    only_error(report, "steps[1].action", "unknown action 'emitt'", "did you mean 'emit'?")
    assert "(known: bounded_wait, dynamic, echo, emit," in errors(report)["steps[1].action"]


def test_unknown_param_suggests_the_declared_one(registry: ActionRegistry) -> None:
    report = check(registry, {"id": "a", "action": "emit", "params": {"count": 1, "lable": "x"}})
    only_error(
        report,
        "steps[0].params.lable",
        "unknown param of action 'emit'; did you mean 'label'?",
        "(known: count, label, mode)",
    )


def test_missing_required_param(registry: ActionRegistry) -> None:
    report = check(registry, {"id": "a", "action": "emit"})
    only_error(report, "steps[0].params.count", "is required")


@pytest.mark.parametrize(
    ("params", "path", "fragment"),
    [
        ({"count": "many"}, "steps[0].params.count", "must be a number, got 'many'"),
        ({"count": 11}, "steps[0].params.count", "must be <= 10, got 11"),
        ({"count": 0}, "steps[0].params.count", "must be >= 1, got 0"),
        ({"count": 1, "mode": "warp"}, "steps[0].params.mode", "'warp' is not one of the options"),
        ({"count": 1, "label": ["x"]}, "steps[0].params.label", "must be a string, got list"),
    ],
)
def test_literal_values_must_fit_their_type_and_rules(
    registry: ActionRegistry, params: dict[str, Any], path: str, fragment: str
) -> None:
    report = check(registry, {"id": "a", "action": "emit", "params": params})
    only_error(report, path, fragment)


def test_templated_values_are_not_type_checked(registry: ActionRegistry) -> None:
    report = check(
        registry,
        {"id": "a", "action": "emit", "params": {"count": "{{ params.n * 20 }}"}},
        parameters=[{"name": "n"}],
    )
    assert report.ok


def test_template_params_are_checked_as_strings(registry: ActionRegistry) -> None:
    report = check(registry, {"id": "a", "action": "render", "params": {"template": 5}})
    assert report.ok  # a number is a fine string
    report = check(registry, {"id": "a", "action": "render", "params": {"template": [1]}})
    only_error(report, "steps[0].params.template", "must be a string")


# ---------------------------------------------------------------------------- the graph


def test_duplicate_step_ids(registry: ActionRegistry) -> None:
    report = check(registry, emit("a"), emit("b"), emit("a"))
    only_error(report, "steps[2].id", "duplicate step id 'a' (also steps[0])")


def test_unknown_depends_on(registry: ActionRegistry) -> None:
    report = check(registry, emit("first"), emit("b", depends_on=["first", "frist", "zzz"]))
    found = errors(report)
    assert found == {
        "steps[1].depends_on[1]": "unknown step 'frist'; did you mean 'first'?",
        "steps[1].depends_on[2]": "unknown step 'zzz'",
    }


def test_a_cycle_is_named(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("start"),
        emit("a", depends_on=["start", "b"]),
        emit("b", depends_on=["c"]),
        emit("c", depends_on=["a"]),
    )
    only_error(report, "steps[1].depends_on", "dependency cycle: a -> b -> c -> a")


def test_every_separate_cycle_is_reported(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("a", depends_on=["b"]),
        emit("b", depends_on=["a"]),
        emit("c", depends_on=["c"]),
    )
    assert errors(report) == {
        "steps[0].depends_on": "dependency cycle: a -> b -> a (each step depends on the next)",
        "steps[2].depends_on": "dependency cycle: c -> c (each step depends on the next)",
    }


# ---------------------------------------------------------------------------- step references


def test_a_reference_to_a_step_that_is_not_upstream(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "{{ steps.b.outputs.message }}"), echo("b"))
    only_error(
        report,
        "steps[0].params.message",
        "steps.b.outputs.message: step 'b' is not upstream of this step",
        "add 'b' to depends_on",
    )


def test_transitive_dependencies_are_upstream(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("a"),
        echo("b", depends_on=["a"]),
        echo("c", "{{ steps['a'].outputs.value }}", depends_on=["b"]),
    )
    assert report.ok


def test_a_reference_to_an_unknown_step(registry: ActionRegistry) -> None:
    report = check(registry, emit("fetch"), echo("b", "{{ steps.fetc.outputs.value }}"))
    only_error(
        report,
        "steps[1].params.message",
        "steps.fetc.outputs.value: unknown step 'fetc'; did you mean 'fetch'?",
    )


def test_a_step_cannot_read_itself(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "{{ steps.a.status }}"))
    only_error(report, "steps[0].params.message", "cannot read its own outputs")


def test_a_reference_to_an_undeclared_output(registry: ActionRegistry) -> None:
    report = check(registry, emit("a"), echo("b", "{{ steps.a.outputs.vaule }}", depends_on=["a"]))
    only_error(
        report,
        "steps[1].params.message",
        "steps.a.outputs.vaule: action 'emit' does not declare output 'vaule'",
        "did you mean 'value'?",
        "(outputs: items, value)",
    )


def test_dynamic_outputs_may_be_anything(registry: ActionRegistry) -> None:
    report = check(
        registry,
        {"id": "a", "action": "dynamic", "params": {"values": {"x": 1}}},
        echo("b", "{{ steps.a.outputs.whatever.deep }}", depends_on=["a"]),
    )
    assert report.ok


def test_a_step_has_outputs_status_and_error(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("a"),
        echo(
            "b", "{{ steps.a.status }} {{ steps.a.error }} {{ steps.a.result }}", depends_on=["a"]
        ),
    )
    only_error(
        report, "steps[1].params.message", "steps.a.result: a step has outputs, status, error"
    )


def test_computed_references_are_checked_up_to_the_computed_part(
    registry: ActionRegistry,
) -> None:
    report = check(
        registry,
        emit("a"),
        echo("b", "{{ steps[params.which].outputs.x }}", depends_on=["a"]),
        parameters=[{"name": "which"}],
    )
    assert report.ok


def test_the_outputs_of_a_for_each_step_are_a_list(registry: ActionRegistry) -> None:
    fan = emit("fan", for_each=[1, 2])
    good = check(
        registry,
        fan,
        echo(
            "b",
            "{{ steps.fan.outputs[0].value }} {{ steps.fan.outputs | length }}",
            depends_on=["fan"],
        ),
    )
    assert good.ok, good.errors
    bad = check(
        registry,
        fan,
        echo("b", "{{ steps.fan.outputs.value }}", depends_on=["fan"]),
        echo("c", "{{ steps.fan.outputs[1].nope }}", depends_on=["fan"]),
    )
    assert errors(bad).keys() == {"steps[1].params.message", "steps[2].params.message"}
    assert "its outputs are a list" in errors(bad)["steps[1].params.message"]
    assert "steps.fan.outputs[0].value" in errors(bad)["steps[1].params.message"]
    assert "does not declare output 'nope'" in errors(bad)["steps[2].params.message"]


# ---------------------------------------------------------------------------- names


def test_params_must_be_declared(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "{{ params.nmae }}"), parameters=[{"name": "name"}])
    only_error(
        report,
        "steps[0].params.message",
        "params.nmae: not a declared pipeline parameter; did you mean 'name'?",
        "(declared: name)",
    )


def test_run_has_id_and_pipeline(registry: ActionRegistry) -> None:
    assert check(registry, echo("a", "{{ run.id }}-{{ run.pipeline }}")).ok
    report = check(registry, echo("a", "{{ run.started }}"))
    only_error(report, "steps[0].params.message", "run has id and pipeline, not 'started'")


def test_undefined_names(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "{{ step.a }} {{ range(3) | list }} {{ dict(a=1) }}"))
    only_error(
        report,
        "steps[0].params.message",
        "step.a: undefined name 'step'; did you mean 'steps'?",
        "(templates can read params, steps, run)",
    )


def test_names_the_template_defines_itself_are_fine(registry: ActionRegistry) -> None:
    template = (
        "{% set total = 0 %}{% for row in steps.a.outputs.items %}{{ row.x }}"
        "{{ loop.index }}{% endfor %}{% set ns = namespace(n=1) %}{{ ns.n }}"
        "{{ cycler('a', 'b').next() }}{{ joiner(',')() }}{{ lipsum(1) }}"
    )
    assert check(registry, emit("a"), echo("b", template, depends_on=["a"])).ok


def test_item_and_index_only_in_the_params_of_a_for_each_step(
    registry: ActionRegistry,
) -> None:
    ok = check(registry, echo("a", "{{ item.name }} #{{ index }}", for_each=[{"name": "x"}]))
    assert ok.ok, ok.errors
    report = check(
        registry,
        echo("a", "{{ item }}"),
        echo("b", "x", for_each="{{ [item] }}", condition="index > 0"),
    )
    found = errors(report)
    assert found.keys() == {
        "steps[0].params.message",
        "steps[1].for_each",
        "steps[1].condition",
    }
    assert (
        "'item' is only defined in the params of a step with for_each"
        in found["steps[0].params.message"]
    )
    assert "'index' is only defined" in found["steps[1].condition"]


# ---------------------------------------------------------------------------- template problems


def test_a_syntax_error_gives_its_position(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "{{ steps.a. }}"))
    only_error(
        report,
        "steps[0].params.message",
        "template syntax error: expected name or number (at line 1, column 13)",
    )


def test_a_syntax_error_in_a_multiline_template(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "first line\n  {{ 1 2 }}"))
    only_error(report, "steps[0].params.message", "(at line 2, column 8)")


def test_nested_params_have_nested_paths(registry: ActionRegistry) -> None:
    report = check(
        registry,
        {
            "id": "a",
            "action": "dynamic",
            "params": {"values": {"list": [1, "{{ nope }}"], "odd key": "{{ 1 + }}"}},
        },
    )
    assert errors(report).keys() == {
        "steps[0].params.values.list[1]",
        "steps[0].params.values['odd key']",
    }


def test_sandbox_refusals_are_errors(registry: ActionRegistry) -> None:
    report = check(
        registry, emit("a"), echo("b", "{{ steps.a.outputs._secret }}", depends_on=["a"])
    )
    only_error(report, "steps[1].params.message", "attribute '_secret' is refused by the sandbox")


def test_unknown_filters_and_includes_are_errors(registry: ActionRegistry) -> None:
    report = check(
        registry,
        echo("a", "{{ 'x' | uppercase }}"),
        echo("b", "{% include 'other.html' %}"),
    )
    assert errors(report) == {
        "steps[0].params.message": "unknown filter 'uppercase'",
        "steps[1].params.message": "templates cannot extend, include or import other templates",
    }


def test_template_params_are_only_checked_for_syntax_and_the_sandbox(
    registry: ActionRegistry,
) -> None:
    fine = check(registry, {"id": "a", "action": "render", "params": {"template": "{{ input.x }}"}})
    assert fine.ok
    report = check(
        registry,
        {"id": "a", "action": "render", "params": {"template": "{{ input.__class__ }}"}},
        {"id": "b", "action": "render", "params": {"template": "{{ input. }}"}},
    )
    assert errors(report).keys() == {"steps[0].params.template", "steps[1].params.template"}
    assert "refused by the sandbox" in errors(report)["steps[0].params.template"]


# ---------------------------------------------------------------------------- conditions, for_each


def test_a_bare_condition_is_analysed_as_an_expression(registry: ActionRegistry) -> None:
    good = check(
        registry, emit("a"), echo("b", condition="steps.a.outputs.value > 1", depends_on=["a"])
    )
    assert good.ok
    report = check(
        registry, emit("a"), echo("b", condition="steps.a.outputs.value >", depends_on=["a"])
    )
    only_error(report, "steps[1].condition", "template syntax error", "column 24")
    report = check(registry, echo("a", condition="params.a and )"))
    only_error(report, "steps[0].condition", "unexpected ')' (at line 1, column 14)")
    report = check(registry, emit("a"), echo("b", condition="{{ steps.a.outputs.nope }}"))
    only_error(report, "steps[1].condition", "not upstream")


def test_an_empty_condition_is_an_error(registry: ActionRegistry) -> None:
    only_error(check(registry, echo("a", condition="  ")), "steps[0].condition", "is empty")


def test_for_each_must_be_a_list_or_a_template(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", for_each="items"))
    only_error(report, "steps[0].for_each", "must be a list or a template giving one")
    report = check(registry, echo("a", for_each="{{ steps.x.outputs.items }}"))
    only_error(report, "steps[0].for_each", "unknown step 'x'")
    report = check(registry, echo("a", for_each=["{{ params.nope }}"]))
    only_error(report, "steps[0].for_each[0]", "not a declared pipeline parameter")


# ---------------------------------------------------------------------------- pipeline outputs


def test_outputs_may_read_any_step_but_not_unknown_ones(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("a"),
        echo("b"),
        outputs={
            "value": "{{ steps.a.outputs.value }}",
            "nested": {"m": "{{ steps.b.outputs.message }}", "bad": "{{ steps.c.outputs.x }}"},
            "item": "{{ item }}",
        },
    )
    assert errors(report).keys() == {"outputs.nested.bad", "outputs.item"}


# ---------------------------------------------------------------------------- parameters


def test_parameter_defaults_must_fit_their_type(registry: ActionRegistry) -> None:
    report = check(
        registry,
        echo("a", "{{ params.n }} {{ params.m }}"),
        parameters=[
            {"name": "n", "type": "integer", "default": "ten"},
            {"name": "n", "type": "string"},
            {"name": "m", "type": "boolean", "default": "yes"},
        ],
    )
    assert errors(report) == {
        "parameters[0].default": "must be a number, got 'ten'",
        "parameters[1].name": "parameter 'n' is declared twice",
    }


# ---------------------------------------------------------------------------- warnings


def test_an_unused_parameter_is_a_warning(registry: ActionRegistry) -> None:
    report = check(
        registry,
        echo("a", "{{ params.used }}"),
        {"id": "b", "action": "render", "params": {"template": "{{ params.in_template }}"}},
        parameters=[{"name": "used"}, {"name": "unused"}, {"name": "in_template"}],
    )
    assert report.ok
    assert warnings(report) == {
        "parameters[1]": "parameter 'unused' is declared but no template uses it"
    }


def test_reading_params_as_a_whole_uses_them_all(registry: ActionRegistry) -> None:
    report = check(registry, echo("a", "{{ params | tojson }}"), parameters=[{"name": "p"}])
    assert report.warnings == []


def test_an_event_driven_step_without_a_timeout_is_a_warning(registry: ActionRegistry) -> None:
    report = check(
        registry,
        {"id": "a", "action": "wait", "params": {"key": "k"}},
        {"id": "b", "action": "wait", "params": {"key": "k"}, "timeout_seconds": 60},
        {"id": "c", "action": "bounded_wait", "params": {"key": "k"}},
        {"id": "d", "action": "self_timed_wait"},
    )
    assert report.ok
    assert warnings(report).keys() == {"steps[0].timeout_seconds"}
    assert "action 'wait' waits for an event and has no timeout" in report.warnings[0].message


def test_retry_without_any_policy_is_a_warning(registry: ActionRegistry) -> None:
    report = check(
        registry,
        emit("a", on_failure="retry"),
        emit("b", on_failure="retry", retry={"max_attempts": 2}),
        {"id": "c", "action": "patient", "on_failure": "retry"},
    )
    assert warnings(report) == {
        "steps[0].on_failure": (
            "retry without a retry policy (step retry, settings.retry or the action's): "
            "the default policy is used"
        )
    }
    with_settings = check(registry, emit("a", on_failure="retry"), settings={"retry": {}})
    assert with_settings.warnings == []


def test_max_parallel_without_for_each_is_a_warning(registry: ActionRegistry) -> None:
    report = check(registry, emit("a", max_parallel=2), emit("b", max_parallel=2, for_each=[1]))
    assert warnings(report) == {"steps[0].max_parallel": "has no effect without for_each"}


# ---------------------------------------------------------------------------- all at once


def test_a_broken_pipeline_reports_every_problem_at_once(registry: ActionRegistry) -> None:
    report = check(
        registry,
        {"id": "a", "action": "emit", "params": {"count": 99, "colour": "red"}},
        {"id": "a", "action": "echo", "params": {"message": "{{ steps.c.outputs.x }}"}},
        {"id": "c", "action": "nope", "depends_on": ["d", "missing"]},
        {"id": "d", "action": "wait", "depends_on": ["c"], "params": {"key": "{{ foo }}"}},
        echo("e", "{{ params.x }} {{ ''.__class__ }} {{ oops( }}"),
        parameters=[{"name": "unused"}],
        outputs={"x": "{{ steps.zz.outputs.y }}"},
    )
    assert set(errors(report)) == {
        "steps[0].params.count",
        "steps[0].params.colour",
        "steps[1].id",
        "steps[1].params.message",
        "steps[2].action",
        "steps[2].depends_on",
        "steps[2].depends_on[1]",
        "steps[3].params.key",
        "steps[4].params.message",
        "outputs.x",
    }
    assert "dependency cycle: c -> d -> c" in errors(report)["steps[2].depends_on"]
    assert "template syntax error" in errors(report)["steps[4].params.message"]
    assert set(warnings(report)) == {"parameters[0]", "steps[3].timeout_seconds"}
    assert all(issue.severity == "error" for issue in report.errors)
    assert all(issue.severity == "warning" for issue in report.warnings)


def test_the_same_problem_twice_in_one_template_is_reported_once(
    registry: ActionRegistry,
) -> None:
    report = check(registry, echo("a", "{{ nope }} and {{ nope }}"))
    assert len(report.errors) == 1
