"""The public surface of the action SDK is deliberate: adding or removing a name fails here."""

from __future__ import annotations

import conveyor.actions

# The names an action written for BudPipeline imports; it ports by changing its imports.
BUDPIPELINE_NAMES = {
    "ActionMeta",
    "ParamDefinition",
    "ParamType",
    "SelectOption",
    "OutputDefinition",
    "ExecutionMode",
    "RetryPolicy",
    "BaseActionExecutor",
    "ActionContext",
    "ActionResult",
    "EventContext",
    "EventResult",
    "EventAction",
    "StepStatus",
    "register_action",
    "ActionExample",
    "ConditionalVisibility",
    "ValidationRules",
    "ActionRegistry",
}


def test_the_actions_package_exports_exactly_these_names() -> None:
    assert conveyor.actions.__all__ == [
        "ActionContext",
        "ActionDefinition",
        "ActionExample",
        "ActionMeta",
        "ActionRegistry",
        "ActionResult",
        "BaseActionExecutor",
        "ConditionalVisibility",
        "DiscoveryReport",
        "EventAction",
        "EventContext",
        "EventResult",
        "ExecutionMode",
        "FailedPlugin",
        "OutputDefinition",
        "ParamDefinition",
        "ParamType",
        "Publisher",
        "RetryPolicy",
        "SelectOption",
        "ServiceInvoker",
        "ShowWhen",
        "StepStatus",
        "ValidationRules",
        "action",
        "coerce_value",
        "definition_of",
        "register_action",
        "validate_params",
        "validated_params",
    ]


def test_every_budpipeline_name_is_exported() -> None:
    assert set(conveyor.actions.__all__) >= BUDPIPELINE_NAMES


def test_every_exported_name_exists_and_is_public_api() -> None:
    for name in conveyor.actions.__all__:
        member = getattr(conveyor.actions, name)
        # Defined in the package, not re-exported from a third-party library by accident.
        assert getattr(member, "__module__", "").startswith("conveyor."), name


def test_the_top_level_package_exports_exactly_these_names() -> None:
    import conveyor

    assert conveyor.__all__ == [
        "ActionStatus",
        "Client",
        "ConveyorError",
        "Event",
        "EventReceipt",
        "LocalBackend",
        "PipelineSpec",
        "RouteStatus",
        "RunStatus",
        "RunSummary",
        "RunView",
        "Settings",
        "StepView",
        "__version__",
        "load_pipeline",
        "validate_pipeline",
    ]
    for name in conveyor.__all__:
        assert hasattr(conveyor, name), name
