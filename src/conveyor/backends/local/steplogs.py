"""Step logs: what actions write to `context.logger`, kept with their run.

Each line is a timeline entry of kind `log` (`{"level", "message", "attempt"}`), so a run's
stream carries it in order with the step's status changes, and pruning a run takes its logs
too. Each step (each item of a `for_each` step) keeps at most `Settings.step_log_max_bytes` of
messages; the line that would pass the bound is replaced by one truncation marker, and the
step's later lines are dropped (they still reach the process's own log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store, dumps, loads

LOG_KIND = "log"
"""The timeline kind of a log line."""

STORED_LEVELS = frozenset({"info", "warning", "error", "critical"})
"""Levels kept with the run; debug lines only reach the process's log."""

_FULL = -1
_REMEMBERED_UNITS = 10_000

LogSink = Callable[[str, str, int | None, int, str, str], None]
"""`(run_id, step_id, index, attempt, level, message)`: takes one line of a step's log."""
Committed = Callable[[str, float, list[tuple[str, str | None, int | None, dict[str, Any]]]], None]


def truncation_marker(limit: int) -> str:
    """The line that ends a step's log once it reached `limit` bytes."""
    return f"[log truncated: this step's log reached {limit} bytes; later lines are not kept]"


def read_logs(
    store: Store, run_id: str, step_id: str | None, after: int = 0, limit: int = 1000
) -> list[tuple[int, float, str, str, int | None, dict[str, Any]]]:
    """(seq, at, kind, step_id, index, data) of a run's log lines after `after`, oldest first."""
    rows = store.db.execute(
        Q["logs_of_run"], {"run_id": run_id, "step_id": step_id, "after": after, "limit": limit}
    )
    return [(row[0], row[1], LOG_KIND, row[2], row[3], loads(row[4])) for row in rows]


class StepLogBook:
    """Appends step log lines to the store, each step's within its byte budget."""

    def __init__(
        self,
        store: Store,
        max_bytes: int,
        clock: Callable[[], float],
        committed: Committed,
    ) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._clock = clock
        self._committed = committed
        # Bytes used per unit, read from the database the first time a unit logs (a resumed
        # run keeps counting from what it stored before).
        self._used: dict[tuple[str, str, int | None], int] = {}

    def record(
        self, run_id: str, step_id: str, index: int | None, attempt: int, level: str, message: str
    ) -> None:
        """Keep one line (or the truncation marker, or nothing once the budget is spent)."""
        key = (run_id, step_id, index)
        used = self._used.get(key)
        if used is None:
            if len(self._used) >= _REMEMBERED_UNITS:
                self._used.clear()
            used = self._usage(key)
        if used == _FULL:
            return
        size = len(message.encode())
        data: dict[str, Any] = {"level": level, "message": message, "attempt": attempt}
        if used + size > self._max_bytes:
            data = {
                "level": "warning",
                "message": truncation_marker(self._max_bytes),
                "attempt": attempt,
                "truncated": True,
            }
            self._used[key] = _FULL
        else:
            self._used[key] = used + size
        now = self._clock()
        with self._store.transaction():
            self._store.add_run_events([(run_id, now, LOG_KIND, step_id, index, dumps(data))])
        self._committed(run_id, now, [(LOG_KIND, step_id, index, data)])

    def _usage(self, key: tuple[str, str, int | None]) -> int:
        used, truncated = self._store.db.execute(Q["log_usage"], key).fetchone()
        return _FULL if truncated else int(used)


class StepLogger:
    """The `context.logger` of a step: structlog's logger, each line also kept with the run.

    Bound to the run and step ids when first used (binding costs more than many actions take
    to run, and most never log). `bind()` returns a logger whose lines carry the bound fields.
    """

    def __init__(
        self,
        sink: LogSink,
        run_id: str,
        step_id: str,
        index: int | None,
        attempt: int,
        bound: dict[str, Any] | None = None,
    ) -> None:
        self._sink = sink
        self._unit = (run_id, step_id, index, attempt)
        self._bound = bound or {}
        self._logger: Any = None

    def _inner(self) -> Any:
        if self._logger is None:
            run_id, step_id, _, _ = self._unit
            logger = structlog.get_logger("conveyor.action").bind(run_id=run_id, step_id=step_id)
            self._logger = logger.bind(**self._bound) if self._bound else logger
        return self._logger

    def bind(self, **fields: Any) -> StepLogger:
        """A logger whose lines also carry `fields`."""
        run_id, step_id, index, attempt = self._unit
        return StepLogger(self._sink, run_id, step_id, index, attempt, {**self._bound, **fields})

    def _log(self, level: str, event: Any, *args: Any, **fields: Any) -> Any:
        if level in STORED_LEVELS:
            text = str(event) % args if args else str(event)
            shown = {**self._bound, **{k: v for k, v in fields.items() if k != "exc_info"}}
            if shown:
                text += " " + " ".join(f"{name}={value!r}" for name, value in shown.items())
            run_id, step_id, index, attempt = self._unit
            try:
                self._sink(run_id, step_id, index, attempt, level, text)
            except Exception as exc:  # noqa: BLE001 - keeping a line must never fail its step.
                self._inner().warning("step_log_not_kept", error=str(exc))
        return getattr(self._inner(), level)(event, *args, **fields)

    def debug(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        """Log at debug level (not kept with the run)."""
        return self._log("debug", event, *args, **fields)

    def info(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        """Log at info level."""
        return self._log("info", event, *args, **fields)

    msg = info

    def warning(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        """Log at warning level."""
        return self._log("warning", event, *args, **fields)

    warn = warning

    def error(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        """Log at error level."""
        return self._log("error", event, *args, **fields)

    def exception(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        """Log at error level, with the exception being handled."""
        fields.setdefault("exc_info", True)
        return self._log("error", event, *args, **fields)

    def critical(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        """Log at critical level."""
        return self._log("critical", event, *args, **fields)

    fatal = critical

    def __getattr__(self, name: str) -> Any:
        # Anything else structlog's loggers offer (new(), unbind(), ...), unrecorded.
        return getattr(self._inner(), name)
