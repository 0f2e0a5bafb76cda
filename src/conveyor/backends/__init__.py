"""Backends drive runs: `local` (embedded, SQLite) and `temporal`."""
