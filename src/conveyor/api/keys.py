"""API keys: made, listed, revoked and checked against the service's `api_keys` table.

A token reads ``cvk_<id>_<secret>``: the id finds the row in one lookup, and the secret is
compared with the stored hash in constant time. Only the hash is stored, so a copy of the
database gives nobody a working key.

The hash is a plain SHA-256, not a slow password hash (bcrypt, scrypt): those exist to make
guessing a *low-entropy* password expensive. A secret here is 32 random bytes
(`secrets.token_urlsafe(32)`, 256 bits), which no amount of guessing can reach, so a slow hash
would only slow every request down.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
"""The scopes, weakest first: each allows everything the ones before it do."""

PREFIX = "cvk"


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret)."""

    id: str
    owner: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether it is not revoked."""
        return self.revoked_at is None


def hash_secret(secret: str) -> str:
    """The stored form of a secret (see the module docstring for why SHA-256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, owner: str, scope: Scope) -> tuple[ApiKey, str]:
    """Make a key for `owner` with `scope`.

    Returns:
        The key and its token; the token is not stored and cannot be shown again.

    Raises:
        ValueError: an empty owner or an unknown scope.
    """
    if not owner.strip():
        raise ValueError("the owner must not be empty")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = time.time()
    with store.transaction() as db:
        db.execute(Q["key_insert"], (key_id, owner, scope, hash_secret(secret), now))
    key = ApiKey(id=key_id, owner=owner, scope=scope, created_at=_ts(now))
    return key, f"{PREFIX}_{key_id}_{secret}"


def list_keys(store: Store) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    return [_key(row) for row in store.db.execute(Q["key_list"])]


def revoke_key(store: Store, key_id: str) -> bool:
    """Revoke a key; False when there is no active key with that id."""
    with store.transaction() as db:
        cursor = db.execute(Q["key_revoke"], (time.time(), key_id))
    return cursor.rowcount > 0


def authenticate(store: Store, token: str) -> ApiKey | None:
    """The active key `token` is for, or None when it is malformed, unknown or revoked."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not key_id or not secret:
        return None
    row = store.db.execute(Q["key_get"], (key_id,)).fetchone()
    if row is None:
        # Hash anyway, so an unknown id costs as long as a wrong secret.
        hmac.compare_digest(hash_secret(secret), hash_secret(""))
        return None
    if not hmac.compare_digest(hash_secret(secret), row["secret_hash"]):
        return None
    key = _key(row)
    return key if key.active else None


def _key(row: sqlite3.Row) -> ApiKey:
    revoked = row["revoked_at"]
    return ApiKey(
        id=row["id"],
        owner=row["owner"],
        scope=row["scope"],
        created_at=_ts(row["created_at"]),
        revoked_at=_ts(revoked) if revoked is not None else None,
    )


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)
