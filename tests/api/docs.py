"""Pipeline documents the API tests send."""

from __future__ import annotations

from typing import Any


def greeting(name: str = "greet", text: str = "hello") -> dict[str, Any]:
    """A valid two-step pipeline whose output `greeting` is `text` and the `who` param."""
    return {
        "name": name,
        "parameters": [{"name": "who", "type": "string", "default": "world"}],
        "steps": [
            {"id": "say", "action": "log", "params": {"message": text + " {{ params.who }}"}},
            {
                "id": "keep",
                "action": "set_output",
                "depends_on": ["say"],
                "params": {"values": {"greeting": "{{ steps.say.outputs.message }}"}},
            },
        ],
        "outputs": {"greeting": "{{ steps.keep.outputs.greeting }}"},
    }


def counted(name: str = "counted") -> dict[str, Any]:
    """A valid pipeline with a required integer parameter `count`."""
    return {
        "name": name,
        "parameters": [{"name": "count", "type": "integer", "required": True}],
        "steps": [{"id": "say", "action": "log", "params": {"message": "{{ params.count }}"}}],
    }


def failing(name: str = "failing") -> dict[str, Any]:
    """A pipeline whose second step fails."""
    return {
        "name": name,
        "steps": [
            {"id": "first", "action": "set_output", "params": {"values": {"n": 1}}},
            {"id": "boom", "action": "fail", "depends_on": ["first"], "params": {"message": "no"}},
        ],
    }


def sleeping(seconds: float = 60, name: str = "sleeping") -> dict[str, Any]:
    """A pipeline that waits on a durable timer."""
    return {
        "name": name,
        "steps": [{"id": "nap", "action": "delay", "params": {"seconds": seconds}}],
    }


def broken(name: str = "broken") -> dict[str, Any]:
    """A pipeline wrong in several ways, each with its own path."""
    return {
        "name": name,
        "steps": [
            {"id": "a", "action": "no_such_action", "params": {}},
            {"id": "b", "action": "delay", "params": {"seconds": -5}},
            {"id": "c", "action": "log", "depends_on": ["ghost"], "params": {"message": "x"}},
        ],
    }
