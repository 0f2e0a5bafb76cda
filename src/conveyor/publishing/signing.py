"""Signing webhook deliveries the Standard Webhooks way, and checking a signature on receipt.

Each webhook request carries (https://www.standardwebhooks.com):

- ``webhook-id``: the delivery's id, the same on every attempt (drop repeats by it);
- ``webhook-timestamp``: when this attempt was sent, in Unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``, keyed
  with the webhook's secret;
- ``X-Conveyor-Event``: the message type.

The id and the timestamp are signed with the body, so a receiver that checks the signature,
refuses a timestamp more than a few minutes from its clock and remembers the ids it handled is
safe from forged, altered and replayed requests.

The key: a secret written ``whsec_<base64>`` (as Standard Webhooks libraries make them) is the
bytes the base64 stands for; any other secret is its UTF-8 bytes. Either way the libraries of
standardwebhooks.com verify the requests (give them the ``whsec_`` secret as it is, or the
bytes of any other).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_HEADER = "X-Conveyor-Event"
SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0


def signing_key(secret: str) -> bytes:
    """The HMAC key of `secret` (see the module docstring).

    Raises:
        ValueError: a ``whsec_`` secret whose rest is not base64.
    """
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a secret starting with {SECRET_PREFIX!r} must be base64") from exc
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for `body` sent as `msg_id` at `timestamp`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of a request carrying `body`."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `body` and `headers` were signed with `secret` within `tolerance_seconds` of `now`.

    Args:
        secret: The webhook's secret.
        body: The raw request body, exactly as received.
        headers: The request's headers (names in any case).
        tolerance_seconds: How old (or how far ahead) the timestamp may be.
        now: The current time in Unix seconds; the clock when None.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    stamp = lowered.get(TIMESTAMP_HEADER)
    given = lowered.get(SIGNATURE_HEADER)
    if not msg_id or not stamp or not given:
        return False
    try:
        timestamp = int(stamp)
        expected = sign(secret, msg_id, timestamp, body)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    # Several signatures may be sent, space separated (a secret being rotated).
    return any(hmac.compare_digest(expected, part) for part in given.split())
