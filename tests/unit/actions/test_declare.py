"""register_action, definition_of and ActionDefinition check what they pair when declared."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import (
    ActionContext,
    ActionDefinition,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    EventContext,
    EventResult,
    ExecutionMode,
    definition_of,
    register_action,
)
from conveyor.errors import InvalidActionError

META = ActionMeta(
    type="echo", version="1.0.0", name="Echo", description="Echoes", category="Testing"
)
EVENT_META = META.model_copy(
    update={"type": "waiter", "execution_mode": ExecutionMode.EVENT_DRIVEN}
)


class EchoExecutor(BaseActionExecutor):
    async def execute(self, context: ActionContext) -> ActionResult:
        return ActionResult(success=True, outputs=dict(context.params))


def test_register_action_attaches_a_definition_named_after_the_class() -> None:
    @register_action(META)
    class Echo:
        meta = META
        executor_class = EchoExecutor

    definition = definition_of(Echo)
    assert definition.meta is META
    assert definition.executor_class is EchoExecutor
    assert definition.source == f"{__name__}:{Echo.__qualname__}"
    assert definition.type == "echo"


def test_an_executor_class_can_be_decorated_itself() -> None:
    @register_action(META)
    class Echo(EchoExecutor):
        pass

    assert definition_of(Echo).executor_class is Echo


async def test_new_executor_gives_a_fresh_instance_per_attempt() -> None:
    definition = ActionDefinition(meta=META, executor_class=EchoExecutor)
    first, second = definition.new_executor(), definition.new_executor()
    assert first is not second
    result = await first.execute(ActionContext(step_id="s", execution_id="r", params={"a": 1}))
    assert result.outputs == {"a": 1}


def test_register_action_takes_an_action_meta() -> None:
    with pytest.raises(InvalidActionError, match="register_action\\(\\) takes an ActionMeta"):
        register_action({"type": "echo"})  # type: ignore[arg-type]


def test_a_class_without_an_executor_is_refused() -> None:
    with pytest.raises(InvalidActionError, match="'Echo' needs an executor_class attribute"):

        @register_action(META)
        class Echo:
            meta = META


def test_a_class_whose_meta_differs_is_refused() -> None:
    other = META.model_copy(update={"version": "2.0.0"})
    with pytest.raises(InvalidActionError, match="the class's meta differs"):

        @register_action(META)
        class Echo:
            meta = other
            executor_class = EchoExecutor


@pytest.mark.parametrize("executor", [object, "EchoExecutor", EchoExecutor()])
def test_the_executor_must_be_a_base_action_executor_subclass(executor: Any) -> None:
    with pytest.raises(InvalidActionError, match="is not a BaseActionExecutor subclass"):
        ActionDefinition(meta=META, executor_class=executor)


def test_an_event_driven_action_must_handle_events() -> None:
    with pytest.raises(InvalidActionError) as caught:
        ActionDefinition(meta=EVENT_META, executor_class=EchoExecutor)
    assert caught.value.action_type == "waiter"
    assert "EchoExecutor is EVENT_DRIVEN but does not implement on_event()" in str(caught.value)

    class Waiter(EchoExecutor):
        async def on_event(self, context: EventContext) -> EventResult:
            raise NotImplementedError

    assert ActionDefinition(meta=EVENT_META, executor_class=Waiter).type == "waiter"


def test_definition_of_accepts_a_class_with_meta_and_executor_class() -> None:
    class Plain:
        meta = META
        executor_class = EchoExecutor

    assert definition_of(Plain).executor_class is EchoExecutor


def test_definition_of_keeps_or_replaces_the_source() -> None:
    definition = ActionDefinition(meta=META, executor_class=EchoExecutor, source="here")
    assert definition_of(definition) is definition
    assert definition_of(definition, "here") is definition
    assert definition_of(definition, "there").source == "there"


@pytest.mark.parametrize("obj", [object(), len, "echo", META])
def test_definition_of_names_what_is_not_an_action(obj: object) -> None:
    with pytest.raises(InvalidActionError, match="is not an action: decorate it"):
        definition_of(obj)


def test_an_undecorated_function_gets_a_hint_to_decorate_it() -> None:
    async def run(data: object) -> None:
        pass

    with pytest.raises(InvalidActionError) as caught:
        definition_of(run)
    assert "run is not an action" in str(caught.value)
    assert "@action(...)" in str(caught.value)
