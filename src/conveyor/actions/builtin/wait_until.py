"""``wait_until``: pause the step durably for some hours, or until a time of day or a date.

Like ``delay``, the action does not sleep: it returns ``sleep_seconds`` and the engine arms a
durable timer that completes the step when it fires, across restarts. It takes BudPipeline's
params (``duration_hours``, ``until_time``, ``timezone``) and gives its outputs.

The outputs are set when the wait is scheduled, because the step's outputs are what
``execute()`` returned; ``waited`` is already true, since nothing reads them before the timer
completes the step, and ``actual_wake_time`` is the time the timer is armed for.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor.actions import (
    ActionContext,
    ActionMeta,
    ActionResult,
    BaseActionExecutor,
    EventAction,
    EventContext,
    EventResult,
    ExecutionMode,
    OutputDefinition,
    ParamDefinition,
    ParamType,
    ValidationRules,
    register_action,
)
from conveyor.actions.builtin._paths import describe_type

MAX_HOURS = 168.0
"""One week, BudPipeline's bound."""


class WaitUntilFailed(Exception):
    """The params do not name a time to wait for; the message says why."""


def wake_time(duration_hours: object, until_time: object, timezone: str, now: datetime) -> datetime:
    """When the wait ends, in UTC.

    Raises:
        WaitUntilFailed: neither or both of the two are given, or what is given cannot be read,
            is in the past, or is more than a week away.
    """
    if (duration_hours is None) == (until_time is None):
        raise WaitUntilFailed("give either duration_hours or until_time, not both or neither")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WaitUntilFailed(f"timezone {timezone!r} is not an IANA time zone name") from exc
    if duration_hours is not None:
        if isinstance(duration_hours, bool) or not isinstance(duration_hours, int | float):
            raise WaitUntilFailed(
                f"duration_hours must be a number, got {describe_type(duration_hours)}"
            )
        if not math.isfinite(duration_hours) or not 0 <= duration_hours <= MAX_HOURS:
            raise WaitUntilFailed(
                f"duration_hours must be between 0 and {MAX_HOURS:g}, got {duration_hours}"
            )
        return now + timedelta(hours=duration_hours)
    if not isinstance(until_time, str):
        raise WaitUntilFailed(f"until_time must be a string, got {describe_type(until_time)}")
    target = _parse(until_time.strip(), zone, now)
    if target <= now:
        raise WaitUntilFailed(f"until_time {until_time!r} ({timezone}) is in the past")
    if target > now + timedelta(hours=MAX_HOURS):
        raise WaitUntilFailed(f"until_time {until_time!r} is more than {MAX_HOURS:g} hours away")
    return target


def _parse(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    if "T" in text:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise WaitUntilFailed(f"until_time {text!r} is not an ISO 8601 date-time") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(UTC)
    parts = text.split(":")
    try:
        numbers = [int(part) for part in parts]
        if not 2 <= len(numbers) <= 3:
            raise ValueError(text)
        local_now = now.astimezone(zone)
        target = local_now.replace(
            hour=numbers[0],
            minute=numbers[1],
            second=numbers[2] if len(numbers) == 3 else 0,
            microsecond=0,
        )
    except ValueError as exc:
        raise WaitUntilFailed(
            f"until_time {text!r} is neither an ISO 8601 date-time (2024-01-27T09:00:00) nor a "
            "time of day (09:00)"
        ) from exc
    # A time of day means its next occurrence.
    if target <= local_now:
        target += timedelta(days=1)
    return target.astimezone(UTC)


class WaitUntilExecutor(BaseActionExecutor):
    """Asks the engine for a durable timer until the wake time."""

    async def execute(self, context: ActionContext) -> ActionResult:
        """Work out the wake time and return the sleep until it."""
        params = context.params
        now = datetime.now(UTC)
        try:
            wake = wake_time(
                params.get("duration_hours"),
                params.get("until_time"),
                str(params.get("timezone") or "UTC"),
                now,
            )
        except WaitUntilFailed as exc:
            return ActionResult(success=False, error=str(exc))
        seconds = max(0.0, (wake - now).total_seconds())
        return ActionResult(
            success=True,
            sleep_seconds=seconds,
            outputs={
                "waited": True,
                "scheduled_wake_time": wake.isoformat(),
                "actual_wake_time": wake.isoformat(),
                "wait_duration_seconds": round(seconds, 3),
            },
        )

    async def on_event(self, context: EventContext) -> EventResult:
        """Events do not end the wait: only its timer does."""
        return EventResult(action=EventAction.IGNORE)


META = ActionMeta(
    type="wait_until",
    name="Wait until",
    description="Pauses for some hours, or until a time of day or a date, on a durable timer "
    "(up to a week), across restarts.",
    category="Control Flow",
    icon="⏰",
    execution_mode=ExecutionMode.EVENT_DRIVEN,
    idempotent=True,
    timeout_seconds=MAX_HOURS * 3600 + 60,
    params=[
        ParamDefinition(
            name="duration_hours",
            label="Duration (hours)",
            type=ParamType.NUMBER,
            description="Hours to wait (fractions allowed, up to 168).",
            placeholder="2.5",
            validation=ValidationRules(min=0, max=MAX_HOURS),
        ),
        ParamDefinition(
            name="until_time",
            label="Until",
            type=ParamType.STRING,
            description="A date-time (2024-01-27T09:00:00) or the next time of day (09:00) to "
            "wait until.",
            placeholder="09:00",
        ),
        ParamDefinition(
            name="timezone",
            label="Time zone",
            type=ParamType.STRING,
            default="UTC",
            description="The IANA time zone until_time is read in (Europe/London).",
        ),
    ],
    outputs=[
        OutputDefinition(name="waited", type="boolean", description="True once it has waited."),
        OutputDefinition(
            name="scheduled_wake_time", type="string", description="When it was to wake (ISO)."
        ),
        OutputDefinition(
            name="actual_wake_time", type="string", description="When its timer was armed for."
        ),
        OutputDefinition(
            name="wait_duration_seconds", type="number", description="How long it waited."
        ),
    ],
)


@register_action(META)
class WaitUntilAction:
    """The ``wait_until`` action."""

    meta = META
    executor_class = WaitUntilExecutor
