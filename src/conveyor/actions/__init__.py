"""The action SDK: everything a plugin author imports.

An action written for BudPipeline ports by changing its imports to ``from conveyor.actions
import ...``; the names and fields are the same.
"""

from conveyor.actions._context import ActionContext, EventContext
from conveyor.actions._declare import definition_of, register_action
from conveyor.actions._executor import ActionDefinition, BaseActionExecutor
from conveyor.actions._function import action
from conveyor.actions._meta import (
    ActionExample,
    ActionMeta,
    ConditionalVisibility,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    RetryPolicy,
    SelectOption,
    ShowWhen,
    ValidationRules,
)
from conveyor.actions._params import coerce_value, validate_params, validated_params
from conveyor.actions._registry import ActionRegistry, DiscoveryReport, FailedPlugin
from conveyor.actions._results import ActionResult, EventAction, EventResult, StepStatus
from conveyor.actions._services import Publisher, ServiceInvoker

__all__ = [
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
