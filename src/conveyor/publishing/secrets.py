"""Webhook secrets at rest: kept encrypted in the database, with a key that is not in it.

Signing a delivery needs the secret itself (a hash would not do), so it is stored encrypted
with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`) and decrypted for each attempt.
The key comes from ``CONVEYOR_SECRETS_KEY``: one Fernet key, or several separated by commas
to rotate (the first encrypts, any of them decrypts). Without it the service makes a key file
beside the database (``<db>.key``, readable by its owner only) on first start and uses that:
a copy of the database file alone then reveals no secret.

Stored values read ``fernet:<token>``; a value without the prefix was stored before secrets
were encrypted and is used as it is (and encrypted by `SecretBox.seal` when rewritten).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from conveyor.config import Settings

__all__ = ["PREFIX", "SecretBox", "SecretUnreadable", "key_file"]

PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A stored secret that none of the keys decrypts (the key was changed or lost)."""


def key_file(settings: Settings) -> Path:
    """Where the key is kept when ``CONVEYOR_SECRETS_KEY`` is not set."""
    return settings.db_path.with_name(settings.db_path.name + ".key")


def _file_key(path: Path) -> bytes:
    """The key in `path`, made (owner-only) when there is none yet."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        # O_EXCL: of two processes starting at once, one writes and the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    return key


class SecretBox:
    """Encrypts secrets for storage and decrypts them for use."""

    def __init__(self, keys: list[bytes]) -> None:
        """Use `keys` (Fernet keys); the first encrypts, any decrypts."""
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of ``CONVEYOR_SECRETS_KEY``, or of the key file beside the database."""
        if settings.secrets_key is not None:
            value = settings.secrets_key.get_secret_value()
            return cls([part.strip().encode() for part in value.split(",") if part.strip()])
        return cls([_file_key(key_file(settings))])

    def seal(self, secret: str) -> str:
        """The stored form of `secret`."""
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def reveal(self, stored: str) -> str:
        """The secret a stored value holds.

        Raises:
            SecretUnreadable: no key decrypts it.
        """
        if not stored.startswith(PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "the webhook's secret cannot be decrypted: CONVEYOR_SECRETS_KEY (or the key "
                "file beside the database) is not the key it was stored with"
            ) from None
