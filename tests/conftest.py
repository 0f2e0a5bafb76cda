"""Fixtures shared by every test layer.

The fixtures themselves live in `tests.support`, one module per concern, so a test can also
use the helpers behind them directly; this file only makes them visible to pytest.
"""

from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = ["tests.support.http_server"]


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """Undo the logging setup a command run in-process makes (`configure_logging`).

    It filters below INFO for the rest of the process: a later test that captures debug
    lines would see none, and only when it happens to run after such a command.
    """
    before = structlog.get_config()
    was_configured = structlog.is_configured()
    yield
    if was_configured:
        structlog.configure(**before)
    else:
        structlog.reset_defaults()
