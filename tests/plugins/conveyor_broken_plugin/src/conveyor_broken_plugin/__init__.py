"""A plugin that cannot start, the way real ones fail: at import, before any action exists."""

raise RuntimeError("conveyor_broken_plugin needs BROKEN_LICENCE_KEY, which is not set")
