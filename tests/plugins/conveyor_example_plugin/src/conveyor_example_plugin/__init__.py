"""Example actions shipped by a third-party distribution.

`ShoutAction` is declared BudPipeline style (metadata plus an executor class); `word_count` is
a typed function (NOMAD style). Both are found through the ``conveyor.actions`` entry points in
this distribution's pyproject.toml.
"""

from pydantic import BaseModel, Field

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    SelectOption,
    ShowWhen,
    ValidationRules,
    action,
    register_action,
)


class ShoutExecutor(BaseActionExecutor):
    """Upper-cases its text."""

    async def execute(self, context: ActionContext) -> ActionResult:
        text = str(context.params["text"]).upper()
        if context.params["style"] == "loud":
            text += "!" * context.params["excitement"]
        return ActionResult(success=True, outputs={"text": text})


META = ActionMeta(
    type="example_shout",
    version="0.1.0",
    name="Shout",
    description="Upper-cases a text",
    category="Examples",
    idempotent=True,
    params=[
        ParamDefinition(
            name="text",
            type=ParamType.STRING,
            required=True,
            description="What to shout",
            validation=ValidationRules(min_length=1, max_length=280),
        ),
        ParamDefinition(
            name="style",
            type=ParamType.SELECT,
            default="loud",
            options=[
                SelectOption(label="Loud", value="loud"),
                SelectOption(label="Calm", value="calm"),
            ],
        ),
        ParamDefinition(
            name="excitement",
            type=ParamType.NUMBER,
            default=1,
            validation=ValidationRules(min=0, max=5),
            show_when=ShowWhen(param="style", equals="loud"),
        ),
    ],
    outputs=[OutputDefinition(name="text", type="string", description="The text, shouted")],
)


@register_action(META)
class ShoutAction:
    meta = META
    executor_class = ShoutExecutor


class WordCountInput(BaseModel):
    text: str = Field(description="The text to count the words of")
    min_length: int = Field(1, ge=1, description="Shorter words are not counted")


class WordCountOutput(BaseModel):
    words: int = Field(description="How many words the text has")


@action(type="example_word_count", category="Examples", queue="cpu", idempotent=True)
async def word_count(data: WordCountInput) -> WordCountOutput:
    """Count the words of a text."""
    return WordCountOutput(words=sum(len(w) >= data.min_length for w in data.text.split()))
