"""``conditional``: choose the first branch whose condition holds.

Each branch is ``{name, condition}``, or BudPipeline's ``{id, label, condition, target_step}``.
A branch with a `target_step` routes: of the steps the branches name as targets (and that
depend on this step), the engine runs the chosen one and skips the others. Without branches,
the step reads BudPipeline's older form: a `condition` and a `true_result` or `false_result`.

The engine renders template conditions before the action runs, so a condition arrives as a
boolean, a number, a list or a string. Strings are read the way people write them:
``"false"``, ``"no"``, ``"off"``, ``"0"``, ``"none"``, ``"null"`` and ``""`` are false, any
other string is true; numbers are true unless zero, lists and objects unless empty. A
``{name}`` branch without a condition is the default, taken when no other branch holds; an
``{id}`` branch without one holds where it stands, as in BudPipeline.

Later steps pick their branch with a condition such as
``"{{ steps.route.outputs.branch == 'large' }}"``.
"""

from __future__ import annotations

from typing import Any

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type
from conveyor.pipeline.templating import is_template

FALSE_WORDS = frozenset({"", "false", "no", "off", "0", "none", "null"})


class UnrenderedCondition(ValueError):
    """A condition that still holds template syntax: the engine did not render it."""


def truthy(value: Any) -> bool:
    """Whether a rendered condition holds.

    Raises:
        UnrenderedCondition: `value` is a template that was never rendered; reading it as
            true would take a branch nobody decided on.
    """
    if isinstance(value, str):
        if is_template(value):
            raise UnrenderedCondition(value)
        return value.strip().lower() not in FALSE_WORDS
    if value is None:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, list | dict | tuple):
        return len(value) > 0
    return True


def _chosen(branch: dict[str, Any], index: int, *, default: bool) -> dict[str, Any]:
    name = branch.get("name", branch.get("id"))
    label = branch.get("label", name)
    return {
        "branch": name,
        "matched": True,
        "index": index,
        "is_default": default,
        "matched_branch": name,
        "matched_label": label,
        "target_step": branch.get("target_step"),
        "result": label,
    }


NO_MATCH: dict[str, Any] = {
    "branch": None,
    "matched": False,
    "index": None,
    "is_default": False,
    "matched_branch": None,
    "matched_label": "none",
    "target_step": None,
    "result": None,
}


def _two_way(params: dict[str, Any]) -> ActionResult:
    """BudPipeline's older form: one `condition`, and a result for each of its values."""
    try:
        holds = truthy(params.get("condition", True))
    except UnrenderedCondition as exc:
        return ActionResult(success=False, error=f"condition {str(exc)!r} was not rendered")
    branch = "true" if holds else "false"
    result = params.get(f"{branch}_result", {"branch": branch})
    return ActionResult(
        success=True,
        outputs={
            **NO_MATCH,
            "branch": branch,
            "matched": True,
            "matched_branch": branch,
            "matched_label": branch,
            "result": result,
        },
    )


class ConditionalExecutor(BaseActionExecutor):
    """Evaluates the branches in order; the first that holds wins, else the default."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Choose the branch."""
        branches = context.params.get("branches")
        if branches is None or branches == []:
            return _two_way(context.params)
        if not isinstance(branches, list):
            return ActionResult(
                success=False,
                error=f"branches must be a list of {{name, condition}} or "
                f"{{id, label, condition, target_step}}, got {describe_type(branches)}",
            )
        default: tuple[int, dict[str, Any]] | None = None
        for index, branch in enumerate(branches):
            if not isinstance(branch, dict) or not isinstance(
                branch.get("name", branch.get("id")), str
            ):
                return ActionResult(
                    success=False,
                    error=f"branch {index} must be an object with a string 'name' (or 'id')",
                )
            name = branch.get("name", branch.get("id"))
            if "condition" not in branch:
                if "name" not in branch:
                    # BudPipeline's branch without a condition holds, in its place in order.
                    return ActionResult(success=True, outputs=_chosen(branch, index, default=False))
                if default is None:
                    default = (index, branch)
                continue
            try:
                holds = truthy(branch["condition"])
            except UnrenderedCondition as exc:
                return ActionResult(
                    success=False,
                    error=f"branch {index} ({name!r}): condition {str(exc)!r} was not rendered",
                )
            if holds:
                return ActionResult(success=True, outputs=_chosen(branch, index, default=False))
        if default is not None:
            index, branch = default
            return ActionResult(success=True, outputs=_chosen(branch, index, default=True))
        return ActionResult(success=True, outputs=dict(NO_MATCH))


META = ActionMeta(
    type="conditional",
    version="1.0.0",
    name="Conditional",
    description="Chooses the first branch whose condition holds (or the default branch), for "
    "later steps to follow.",
    category="Control Flow",
    icon="🔀",
    execution_mode=ExecutionMode.SYNC,
    idempotent=True,
    timeout_seconds=30,
    params=[
        ParamDefinition(
            name="branches",
            label="Branches",
            type=ParamType.BRANCHES,
            description="In order: {name, condition}, or {id, label, condition, target_step}. "
            "A condition is usually a template such as {{ params.size > 10 }}; a {name} "
            "branch without one is the default. A target_step is run if its branch is "
            "chosen and skipped otherwise.",
            placeholder='[{"name": "large", "condition": "{{ params.size > 10 }}"}, '
            '{"name": "small"}]',
        ),
        ParamDefinition(
            name="condition",
            label="Condition (without branches)",
            type=ParamType.BOOLEAN,
            default=True,
            description="Without branches: which of true_result and false_result to give.",
        ),
        ParamDefinition(
            name="true_result",
            label="Result when true",
            type=ParamType.JSON,
            description='Without branches: the result when condition holds ({"branch": '
            '"true"} unless set).',
        ),
        ParamDefinition(
            name="false_result",
            label="Result when false",
            type=ParamType.JSON,
            description='Without branches: the result otherwise ({"branch": "false"} unless set).',
        ),
    ],
    outputs=[
        OutputDefinition(
            name="branch",
            type="string",
            description="The chosen branch's name; null when none holds and there is no default.",
        ),
        OutputDefinition(
            name="matched",
            type="boolean",
            description="Whether a branch (or the default) was chosen.",
        ),
        OutputDefinition(
            name="index", type="number", description="The chosen branch's position, from 0."
        ),
        OutputDefinition(
            name="is_default",
            type="boolean",
            description="Whether the default branch was chosen because no condition held.",
        ),
        OutputDefinition(
            name="matched_branch",
            type="string",
            description="The chosen branch's id (or name); null when none holds.",
        ),
        OutputDefinition(
            name="matched_label",
            type="string",
            description="The chosen branch's label (its id when it has none); 'none' when "
            "none holds.",
        ),
        OutputDefinition(
            name="target_step",
            type="string",
            description="The step the chosen branch routes to; null without one.",
        ),
        OutputDefinition(
            name="result",
            type="any",
            description="The chosen branch's label; without branches, true_result or false_result.",
        ),
    ],
)


@register_action(META)
class ConditionalAction:
    """The ``conditional`` action."""

    meta = META
    executor_class = ConditionalExecutor
