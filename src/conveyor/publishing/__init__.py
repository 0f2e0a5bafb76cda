"""Lifecycle publishing: each run's lifecycle to its callback topics and signed webhooks.

A run started with `callback_topics` and `webhooks` has every step start, completion, failure,
skip, wait, progress report and its own start and end sent to each of them as one JSON message
shape (`messages`): as a CloudEvent through Dapr pub/sub, or as a ``POST`` signed the Standard
Webhooks way (`signing`), its secret kept encrypted (`secrets`). Deliveries are kept in SQLite
(`outbox`) and sent in the background with retries (`dispatcher`), so neither a slow receiver
nor a restart loses or delays anything the engine does.
"""

from conveyor.publishing.dispatcher import Dispatcher, backoff_seconds
from conveyor.publishing.messages import EVENT_TYPES, cloud_event, lifecycle_message
from conveyor.publishing.signing import (
    EVENT_HEADER,
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from conveyor.publishing.specs import CallbackTopic, WebhookSpec, check_targets

__all__ = [
    "EVENT_HEADER",
    "EVENT_TYPES",
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CallbackTopic",
    "Dispatcher",
    "WebhookSpec",
    "backoff_seconds",
    "check_targets",
    "cloud_event",
    "lifecycle_message",
    "sign",
    "verify",
]
