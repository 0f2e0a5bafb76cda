"""Crash recovery: a real engine process killed with SIGKILL, then restarted on its database."""
