"""The Temporal dev server the bench runs its Temporal systems on, and `Unavailable`.

The server is Conveyor's own helper (`conveyor.backends.temporal.devserver`, the one the tests
use too); here its failures become `Unavailable`, which marks a system as not run, with the
reason, instead of ending the bench.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.backends.temporal.devserver import DevServer

__all__ = ["Unavailable", "dev_server"]


class Unavailable(RuntimeError):
    """A peer or server cannot run here; the message says why."""


@contextmanager
def dev_server() -> Iterator[DevServer]:
    """A dev server on free loopback ports, in a temporary directory; stopped after."""
    from conveyor.backends.temporal import devserver  # Needs temporalio: only when used.

    with ExitStack() as stack:
        try:
            server = stack.enter_context(devserver.dev_server())
        except devserver.DevServerError as exc:
            raise Unavailable(str(exc)) from exc
        yield server
