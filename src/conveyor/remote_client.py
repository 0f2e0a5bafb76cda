"""The client of a Conveyor server: `Client.remote(url, api_key)`.

The same methods as the local client; what differs is where the catalog of actions is
(the server's) and who checks a one-action run's params (the server, when it is started).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.backends.remote import RemoteBackend
from conveyor.client import Client


class RemoteClient(Client):
    """`Client` over a `RemoteBackend`."""

    backend: RemoteBackend

    def __init__(self, backend: RemoteBackend) -> None:
        super().__init__(backend)

    async def _is_action(self, name: str) -> bool:
        # A name with no suffix that the server's catalog has; anything else is a file.
        return not Path(name).suffix and await self.backend.has_action(name)

    def _check_action(self, action_name: str, values: Mapping[str, Any]) -> str:
        """Nothing to check here: the server checks the params when the run is started."""
        return action_name
