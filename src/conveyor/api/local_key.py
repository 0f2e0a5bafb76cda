"""A key for local use, kept beside the database so `make run` shows the same one each time.

The token is written to ``<db>.local-key`` (readable by its owner only): API keys are stored
hashed, so the file is the one place the token can be read again. A revoked or unknown token
in the file is replaced by a new key.
"""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.api.keys import Scope, authenticate, create_key
from conveyor.backends.local.store import Store

__all__ = ["key_file_for", "local_key"]


def key_file_for(db_path: Path) -> Path:
    """Where the local key of the database at `db_path` is kept."""
    return db_path.with_name(db_path.name + ".local-key")


def local_key(store: Store, owner: str, scope: Scope = "admin") -> tuple[str, bool]:
    """The local key's token, made when there is none that still works.

    Returns:
        The token, and whether it was made now.
    """
    path = key_file_for(store.path)
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        key = authenticate(store, token)
        if key is not None and key.owner == owner and key.scope == scope:
            return token, False
    _, token = create_key(store, owner, scope)
    # Created with owner-only permissions from the start, not narrowed after writing.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token, True
