"""Fixtures shared by every test layer.

The fixtures themselves live in `tests.support`, one module per concern, so a test can also
use the helpers behind them directly; this file only makes them visible to pytest.
"""

pytest_plugins = ["tests.support.http_server"]
