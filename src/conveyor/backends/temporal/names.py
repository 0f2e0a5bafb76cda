"""The names Conveyor uses on a Temporal cluster: task queues, workflow ids, signals."""

from __future__ import annotations

import hashlib

RUN_WORKFLOW = "ConveyorRun"
MAILBOX_WORKFLOW = "ConveyorMailbox"

EXECUTE_ACTIVITY = "conveyor.execute"
ON_EVENT_ACTIVITY = "conveyor.on_event"
CLEANUP_ACTIVITY = "conveyor.cleanup"
SUBSCRIBE_ACTIVITY = "conveyor.subscribe"

SIGNAL_DELIVER = "deliver"
SIGNAL_PROGRESS = "progress"
SIGNAL_CANCEL_REASON = "cancel_reason"
SIGNAL_EVENT = "event"
SIGNAL_SUBSCRIBE = "subscribe"
SIGNAL_UNSUBSCRIBE = "unsubscribe"
QUERY_VIEW = "view"
QUERY_TIMELINE = "timeline"
QUERY_PENDING = "pending"

RUN_ID_PREFIX = "conveyor-run-"


def workflow_queue(prefix: str) -> str:
    """The task queue of the run and mailbox workflows."""
    return f"{prefix}-workflows"


DEFAULT_QUEUE = "default"
"""The Conveyor queue of actions that name none."""


def activity_queue(prefix: str, queue: str) -> str:
    """The task queue the actions of Conveyor queue `queue` run on.

    The default queue's actions share the workflows' task queue. The SDK starts an activity at
    once (eagerly, without a trip through the server's matching) only when it is on its
    workflow's task queue and the same worker serves both: a step on a queue of its own
    waited 32 to 38 ms here before it started, which doubled a 100-step sequence's time.
    Named queues (``gpu``...) keep task queues of their own, for workers on other machines.
    """
    if queue == DEFAULT_QUEUE:
        return workflow_queue(prefix)
    return f"{prefix}-{queue}"


def mailbox_id(prefix: str, correlation_id: str) -> str:
    """The id of the mailbox workflow of a correlation id in the deployment of `prefix`.

    Workflow ids are unique per namespace, not per task queue: without the prefix, two
    deployments sharing a namespace would share mailboxes, and one whose workers are gone
    would swallow the other's events. Hashed, since correlation ids may be any text.
    """
    digest = hashlib.sha256(f"{prefix}\0{correlation_id}".encode()).hexdigest()[:40]
    return f"conveyor-mailbox-{digest}"


def unroutable_mailbox(prefix: str) -> str:
    """The mailbox that keeps the deployment's events with no correlation id."""
    return f"conveyor-unroutable-{prefix}"


def keyed_run_id(prefix: str, idempotency_key: str) -> str:
    """The run id an idempotency key stands for in the deployment of `prefix`."""
    digest = hashlib.sha256(f"{prefix}\0{idempotency_key}".encode()).hexdigest()[:32]
    return f"{RUN_ID_PREFIX}key-{digest}"


def run_workflow_id(run_id: str) -> str:
    """The workflow id of a run (the run id itself, which carries the prefix)."""
    return run_id
