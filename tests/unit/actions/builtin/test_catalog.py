"""Every built-in action is discoverable through the entry points and fully described."""

from __future__ import annotations

import importlib.metadata

import pytest

from conveyor.actions import ActionDefinition, ActionRegistry, ExecutionMode, definition_of

BUILTINS = {
    "log": "conveyor.actions.builtin.log:LogAction",
    "set_output": "conveyor.actions.builtin.set_output:SetOutputAction",
    "transform": "conveyor.actions.builtin.transform:TransformAction",
    "aggregate": "conveyor.actions.builtin.aggregate:AggregateAction",
    "conditional": "conveyor.actions.builtin.conditional:ConditionalAction",
    "fail": "conveyor.actions.builtin.fail:FailAction",
    "delay": "conveyor.actions.builtin.delay:DelayAction",
    "wait_until": "conveyor.actions.builtin.wait_until:WaitUntilAction",
    "wait_for_event": "conveyor.actions.builtin.wait_for_event:WaitForEventAction",
    "http_request": "conveyor.actions.builtin.http_request:HttpRequestAction",
    "notify": "conveyor.actions.builtin.notify:NotifyAction",
    "approval": "conveyor.actions.builtin.approval:ApprovalAction",
}


def _load(target: str) -> ActionDefinition:
    module, _, attr = target.partition(":")
    return definition_of(getattr(importlib.import_module(module), attr))


def test_entry_points_declare_every_builtin() -> None:
    declared = {
        ep.name: ep.value for ep in importlib.metadata.entry_points(group="conveyor.actions")
    }
    for name, target in BUILTINS.items():
        assert declared.get(name) == target


def test_discovery_registers_every_builtin() -> None:
    registry = ActionRegistry()
    registry.discover()

    assert set(BUILTINS) <= set(registry.types())
    assert not [f for f in registry.failures if f.entry_point.startswith(tuple(BUILTINS))]


@pytest.mark.parametrize(("action_type", "target"), sorted(BUILTINS.items()))
def test_metadata_is_complete(action_type: str, target: str) -> None:
    meta = _load(target).meta

    assert meta.type == action_type
    assert meta.name
    assert meta.description
    assert meta.category
    assert meta.icon
    for param in meta.params:
        assert param.label, f"{action_type}.{param.name} has no label"
        assert param.description, f"{action_type}.{param.name} has no description"
    for output in meta.outputs:
        assert output.type != "any" or output.name in {"result", "body"}, output
        assert output.description, f"{action_type} output {output.name} has no description"
    assert meta.outputs or meta.dynamic_outputs


@pytest.mark.parametrize("action_type", ["delay", "wait_for_event"])
def test_waiting_actions_are_event_driven(action_type: str) -> None:
    assert _load(BUILTINS[action_type]).meta.execution_mode is ExecutionMode.EVENT_DRIVEN


def test_actions_with_side_effects_are_not_idempotent() -> None:
    assert not _load(BUILTINS["http_request"]).meta.idempotent
    assert not _load(BUILTINS["notify"]).meta.idempotent
    assert _load(BUILTINS["log"]).meta.idempotent
