"""Signing webhook deliveries, and checking a signature on the receiving end.

Each webhook request carries:

- ``X-Conveyor-Signature: sha256=<hex>``: HMAC-SHA256 of the raw request body, keyed with the
  webhook's secret;
- ``X-Conveyor-Delivery``: the delivery's id, the same on every attempt (drop repeats by it);
- ``X-Conveyor-Timestamp``: when this attempt was sent, in Unix seconds;
- ``X-Conveyor-Event``: the message type.

The body repeats the delivery id (`delivery_id`) and the send time (`sent_at`), so both are
covered by the signature: a receiver that checks the signature, refuses a `sent_at` older than a
few minutes and remembers the delivery ids it handled is safe from forged and replayed requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime

SIGNATURE_HEADER = "X-Conveyor-Signature"
DELIVERY_HEADER = "X-Conveyor-Delivery"
TIMESTAMP_HEADER = "X-Conveyor-Timestamp"
EVENT_HEADER = "X-Conveyor-Event"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: str,
    body: bytes,
    signature: str | None,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `body` was signed with `secret` and sent within `tolerance_seconds` of `now`.

    Args:
        secret: The webhook's secret.
        body: The raw request body, exactly as received.
        signature: The ``X-Conveyor-Signature`` header (None when absent).
        tolerance_seconds: How old (or how far ahead) the body's `sent_at` may be.
        now: The current time in Unix seconds; the clock when None.
    """
    if signature is None or not hmac.compare_digest(sign(secret, body), signature.strip()):
        return False
    try:
        sent_at = datetime.fromisoformat(json.loads(body)["sent_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return False
    current = time.time() if now is None else now
    return abs(current - sent_at) <= tolerance_seconds
