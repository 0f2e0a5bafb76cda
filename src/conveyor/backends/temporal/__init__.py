"""The Temporal backend: runs as workflows, actions as activities on their queue's workers.

Needs the `temporal` extra; importing it without gives an actionable message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigurationError

if TYPE_CHECKING:
    from conveyor.backends.temporal.backend import TemporalBackend

__all__ = ["TemporalBackend", "require_temporal"]


def require_temporal() -> None:
    """Raise an actionable error when the `temporal` extra is not installed."""
    try:
        import temporalio  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "the Temporal backend needs the 'temporal' extra: pip install 'conveyor[temporal]'"
        ) from exc


def __getattr__(name: str) -> Any:
    if name == "TemporalBackend":
        require_temporal()
        from conveyor.backends.temporal.backend import TemporalBackend

        return TemporalBackend
    raise AttributeError(name)
