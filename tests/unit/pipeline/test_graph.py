"""The step graph: order, cycles and ancestry."""

from __future__ import annotations

import pytest

from conveyor.errors import PipelineValidationError
from conveyor.pipeline import PipelineSpec, StepGraph
from conveyor.pipeline.graph import format_cycle


def graph(**deps: list[str]) -> StepGraph:
    return StepGraph(deps)


def test_topological_order_puts_each_step_after_its_dependencies() -> None:
    g = graph(d=["b", "c"], b=["a"], c=["a"], a=[])
    order = g.topological_order()
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")


def test_topological_order_keeps_file_order_among_ready_steps() -> None:
    g = graph(z=[], y=[], x=["z"], w=[])
    assert g.topological_order() == ["z", "y", "x", "w"]


def test_topological_order_of_independent_steps_is_file_order() -> None:
    g = graph(c=[], a=[], b=[])
    assert g.topological_order() == ["c", "a", "b"]


def test_topological_order_refuses_a_cycle_and_names_it() -> None:
    g = graph(a=["b"], b=["a"], c=[])
    with pytest.raises(PipelineValidationError, match=r"a -> b -> a"):
        g.topological_order()


def test_find_cycle_returns_the_cycle_with_its_first_step_repeated() -> None:
    g = graph(a=["b"], b=["c"], c=["a"], d=["a"])
    assert g.find_cycle() == ["a", "b", "c", "a"]


def test_find_cycle_is_none_for_a_dag() -> None:
    assert graph(a=[], b=["a"], c=["a", "b"]).find_cycle() is None


def test_a_step_depending_on_itself_is_a_cycle() -> None:
    assert graph(a=["a"]).find_cycle() == ["a", "a"]


def test_find_cycle_reaches_a_cycle_behind_acyclic_steps() -> None:
    g = graph(start=["x"], x=["y"], y=["z"], z=["y"])
    assert g.find_cycle() == ["y", "z", "y"]


def test_find_cycles_reports_separate_cycles() -> None:
    g = graph(a=["b"], b=["a"], c=["d"], d=["c"], e=["a"])
    assert g.find_cycles() == [["a", "b", "a"], ["c", "d", "c"]]


def test_upstream_is_every_transitive_ancestor() -> None:
    g = graph(a=[], b=["a"], c=["b"], d=["c", "x"], x=[])
    assert g.upstream("d") == {"a", "b", "c", "x"}
    assert g.upstream("a") == frozenset()


def test_upstream_on_a_cycle_excludes_the_step_itself() -> None:
    g = graph(a=["b"], b=["a"])
    assert g.upstream("a") == {"b"}


def test_unknown_dependencies_are_left_out() -> None:
    g = graph(a=["ghost"], b=["a", "a"])
    assert g.dependencies("a") == ()
    assert g.dependencies("b") == ("a",)
    assert g.dependents("a") == ["b"]
    assert g.topological_order() == ["a", "b"]


def test_a_long_chain_does_not_recurse() -> None:
    deps = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(5000)}
    g = StepGraph(deps)
    assert len(g.upstream("s4999")) == 4999
    assert g.find_cycle() is None
    assert g.topological_order()[-1] == "s4999"


def test_of_a_spec_keeps_the_first_of_repeated_ids() -> None:
    spec = PipelineSpec.model_validate(
        {
            "name": "p",
            "steps": [
                {"id": "a", "action": "x"},
                {"id": "b", "action": "x", "depends_on": ["a"]},
                {"id": "b", "action": "x", "depends_on": ["c"]},
            ],
        }
    )
    g = StepGraph.of(spec)
    assert g.ids == ["a", "b"]
    assert g.dependencies("b") == ("a",)


def test_format_cycle() -> None:
    assert format_cycle(["a", "b", "a"]) == "a -> b -> a"
