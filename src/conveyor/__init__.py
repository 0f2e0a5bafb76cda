"""Conveyor: a durable pipeline engine for pluggable actions."""

__version__ = "0.1.0"

__all__ = ["__version__"]
