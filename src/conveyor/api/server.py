"""The uvicorn server `conveyor serve` runs: it ends the live streams as soon as a stop is asked.

Uvicorn stops gracefully by waiting for open requests to finish, and a live (SSE) stream never
finishes on its own: without this, every open stream held the stop until the graceful timeout
and then ended in a cancellation traceback. The app hears of the stop only after that wait, so
the server tells the streams itself.
"""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn

from conveyor.api.sse import StreamGate

__all__ = ["StreamClosingServer"]


class StreamClosingServer(uvicorn.Server):
    """A uvicorn server that closes `streams` when it is asked to stop."""

    def __init__(self, config: uvicorn.Config, streams: StreamGate) -> None:
        super().__init__(config)
        self.streams = streams

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Close the streams on the event loop, then stop as uvicorn does."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # Not called from the loop's thread: nothing runs to race with.
            self.streams.close()
        else:
            loop.call_soon_threadsafe(self.streams.close)
        super().handle_exit(sig, frame)
