"""The embedded backend: one process, one SQLite file, no server."""

from conveyor.backends.local.runtime import LocalBackend
from conveyor.backends.local.store import Store

__all__ = ["LocalBackend", "Store"]
