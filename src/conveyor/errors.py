"""Every error Conveyor raises on purpose.

    ConveyorError
    ├── ConfigurationError          bad or missing settings, missing install extra
    ├── RemoteError                 a Conveyor server unreachable, or an answer no other error names
    ├── ActionError
    │   ├── InvalidActionError      an ActionMeta or executor that breaks the rules when declared
    │   ├── DuplicateActionError    two sources register the same action type
    │   ├── UnknownActionError      a type nobody registered
    │   ├── ParamValidationError    param values that break their definitions (one entry per param)
    │   └── ServiceInvocationError  invoke_service got no answer, an error status or a timeout
    │       ├── ServiceStatusError  the service answered a non-2xx status (also an
    │       │                       httpx.HTTPStatusError, as BudPipeline's actions expect)
    │       └── BlockedAddressError an outbound request to an address the policy refuses
    ├── PipelineError
    │   ├── PipelineLoadError       a file that cannot be read or parsed
    │   ├── PipelineValidationError a pipeline with problems (each with its path)
    │   └── TemplateError           a template that cannot be compiled or rendered
    │       ├── SandboxViolationError  a template that reached for something unsafe
    │       └── TemplateLimitError     a template that passed a limit (time, size, arithmetic)
    └── RunError
        ├── RunNotFoundError        an unknown run id
        ├── RunStateError           a request the run's status does not allow (retry a running run)
        ├── EventError              an event that cannot be accepted
        ├── UnstorableValueError    a value a run cannot keep exactly (inf, a 65-bit integer)
        └── EngineBusyError         the database is held by another engine process
            └── DatabaseBusyError   another process holds the database's write lock right now

Leaf classes carry the structured fields callers need (`run_id`, `field`, ...), and third-party
errors are wrapped with ``raise ... from`` so the cause stays visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx


def field_path(parts: Iterable[str | int], prefix: str = "") -> str:
    """The path errors name a field by: ``("steps", 0, "id")`` as ``steps[0].id``.

    `prefix` is the path the parts continue (``data`` gives ``data.steps[0].id``).
    """
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""


class ConfigurationError(ConveyorError):
    """Settings are missing or wrong, or an install extra is absent."""


class RemoteError(ConveyorError):
    """A Conveyor server could not be reached, refused the key, or answered an error that no
    other class names (a mistake the engine would name comes back as that error)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type_: str | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        self.status_code = status_code
        self.type = type_
        self.fields = list(fields)
        """`path: message` of each problem the server named."""
        super().__init__(message)


class ActionError(ConveyorError):
    """Something is wrong with an action or with how it was called."""


class InvalidActionError(ActionError):
    """An action's declaration breaks the rules; raised when it is declared."""

    def __init__(self, action_type: str, problems: Sequence[str]) -> None:
        self.action_type = action_type
        self.problems = list(problems)
        joined = "; ".join(self.problems)
        super().__init__(f"action {action_type!r}: {joined}")


class DuplicateActionError(ActionError):
    """Two sources declare the same action type."""

    def __init__(self, action_type: str, first: str, second: str) -> None:
        self.action_type = action_type
        self.first = first
        self.second = second
        super().__init__(
            f"action type {action_type!r} is registered twice: by {first} and by {second}"
        )


class UnknownActionError(ActionError):
    """No action of that type is registered."""

    def __init__(self, action_type: str, known: Sequence[str] = ()) -> None:
        self.action_type = action_type
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown action type {action_type!r}{hint}")


@dataclass(frozen=True)
class ParamProblem:
    """One problem with one param value."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class ParamValidationError(ActionError):
    """Param values that break their definitions; `problems` names each param."""

    def __init__(self, problems: Sequence[ParamProblem], action_type: str | None = None) -> None:
        self.problems = list(problems)
        self.action_type = action_type
        prefix = f"action {action_type!r}: " if action_type else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))


class ServiceInvocationError(ActionError):
    """A call through `invoke_service` failed: no answer, an error status or a timeout."""

    def __init__(
        self,
        message: str,
        *,
        app_id: str | None = None,
        status_code: int | None = None,
        body: object = None,
    ) -> None:
        self.app_id = app_id
        self.status_code = status_code
        self.body = body
        super().__init__(message)


class ServiceStatusError(ServiceInvocationError, httpx.HTTPStatusError):
    """The service answered with a non-2xx status.

    Also an `httpx.HTTPStatusError` (with `request` and `response`), because actions written
    for BudPipeline catch that around `invoke_service`.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        response: httpx.Response,
        app_id: str | None = None,
        body: object = None,
    ) -> None:
        # httpx's constructor, not ServiceInvocationError's: in this class's MRO the latter's
        # super() reaches HTTPStatusError, which needs request and response.
        httpx.HTTPStatusError.__init__(self, message, request=request, response=response)
        self.app_id = app_id
        self.status_code = response.status_code
        self.body = body


class BlockedAddressError(ServiceInvocationError):
    """An outbound request to an address that the network policy refuses."""


class PipelineError(ConveyorError):
    """Something is wrong with a pipeline."""


class PipelineLoadError(PipelineError):
    """A pipeline file or document that cannot be read or parsed."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class PipelineValidationError(PipelineError):
    """A pipeline with errors; `issues` holds every one, each with its path."""

    def __init__(self, issues: Sequence[object]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  {i}" for i in self.issues)
        super().__init__(f"pipeline is invalid:\n{lines}")


class TemplateError(PipelineError):
    """A template that cannot be compiled or rendered."""

    def __init__(self, message: str, *, template: str | None = None) -> None:
        self.template = template
        super().__init__(message)


class SandboxViolationError(TemplateError):
    """A template reached for an attribute or call the sandbox refuses."""


class TemplateLimitError(TemplateError):
    """A template evaluation passed one of its limits; `limit` names the setting."""

    def __init__(self, message: str, *, limit: str, template: str | None = None) -> None:
        self.limit = limit
        super().__init__(message, template=template)


class RunError(ConveyorError):
    """Something is wrong with a run or with a request about one."""


class UnstorableValueError(RunError, ValueError):
    """A value a run cannot keep exactly (see `conveyor.engine.values`); names where it is."""


class RunNotFoundError(RunError):
    """No run has that id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class RunStateError(RunError):
    """The run's status does not allow the request (e.g. retrying a run that still runs)."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id}: {message}")


class EventError(RunError):
    """An event that cannot be accepted (it is not stored)."""


class EngineBusyError(RunError):
    """Another live engine process holds the database."""


class DatabaseBusyError(EngineBusyError):
    """Another process holds the database's write lock; nothing was written, try again."""
