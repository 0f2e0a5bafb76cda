"""``conditional``: choose the first branch whose condition holds.

Each branch is ``{name, condition}``. The engine renders template conditions before the action
runs, so a condition arrives as a boolean, a number, a list or a string. Strings are read the
way people write them: ``"false"``, ``"no"``, ``"off"``, ``"0"``, ``"none"``, ``"null"`` and
``""`` are false, any other string is true; numbers are true unless zero, lists and objects
unless empty. A branch without a condition is the default, taken when no other branch holds.

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


def _outputs(name: str | None, index: int | None, *, default: bool) -> dict[str, Any]:
    return {"branch": name, "matched": name is not None, "index": index, "is_default": default}


class ConditionalExecutor(BaseActionExecutor):
    """Evaluates the branches in order; the first that holds wins, else the default."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Choose the branch."""
        branches = context.params.get("branches")
        if not isinstance(branches, list) or not branches:
            return ActionResult(
                success=False,
                error=f"branches must be a non-empty list of {{name, condition}}, "
                f"got {describe_type(branches)}",
            )
        default: tuple[int, str] | None = None
        for index, branch in enumerate(branches):
            if not isinstance(branch, dict) or not isinstance(branch.get("name"), str):
                return ActionResult(
                    success=False, error=f"branch {index} must be an object with a string 'name'"
                )
            name = branch["name"]
            if "condition" not in branch:
                if default is None:
                    default = (index, name)
                continue
            try:
                holds = truthy(branch["condition"])
            except UnrenderedCondition as exc:
                return ActionResult(
                    success=False,
                    error=f"branch {index} ({name!r}): condition {str(exc)!r} was not rendered",
                )
            if holds:
                return ActionResult(success=True, outputs=_outputs(name, index, default=False))
        if default is not None:
            index, name = default
            return ActionResult(success=True, outputs=_outputs(name, index, default=True))
        return ActionResult(success=True, outputs=_outputs(None, None, default=False))


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
            required=True,
            description="In order: {name, condition}. A condition is usually a template such "
            "as {{ params.size > 10 }}; a branch without one is the default.",
            placeholder='[{"name": "large", "condition": "{{ params.size > 10 }}"}, '
            '{"name": "small"}]',
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
    ],
)


@register_action(META)
class ConditionalAction:
    """The ``conditional`` action."""

    meta = META
    executor_class = ConditionalExecutor
