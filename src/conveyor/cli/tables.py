"""Tables for a person, readable at any width and in a pipe.

Short columns (ids, names, statuses, times) never wrap and are never cut: they are what users
copy into the next command. The free-text column (a message, an error, a description) takes
the width left and wraps between words, so a long error makes its own row taller instead of
squeezing every other column to `complet…`. Headers are never split.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

_MIN_TEXT = 16
"""The narrowest a free-text column gets, however little room is left."""


def table(*headers: str, text: str | None = None, title: str | Text | None = None) -> Table:
    """A table with these columns; `text` names the one free-text column (the last by default).

    Call `fit(table, console)` once the rows are in, before printing it.
    """
    free = text if text is not None else headers[-1]
    shown = Table(
        title=title,
        title_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for header in headers:
        if header == free:
            shown.add_column(header, overflow="fold", min_width=len(header))
        else:
            shown.add_column(header, no_wrap=True, min_width=len(header))
    return shown


def fit(shown: Table, console: Console) -> Table:
    """Size the columns for `console`: fixed ones to their content, the text ones to the rest."""
    fixed = 0
    flexible = []
    for column in shown.columns:
        if column.no_wrap:
            cells = [console.measure(cell).maximum for cell in column.cells]
            column.min_width = max([len(str(column.header)), *cells])
            fixed += column.min_width
        else:
            flexible.append(column)
    padding = sum(shown._get_padding_width(index) for index in range(len(shown.columns)))
    spare = console.width - fixed - padding - shown._extra_width
    for column in flexible:
        share = max(_MIN_TEXT, len(str(column.header)), spare // max(len(flexible), 1))
        column.max_width = share
    return shown


def local_time(value: datetime | str | None) -> str:
    """`12-05 09:12:03` in the local zone (from a datetime or an ISO string); '' for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone().strftime("%m-%d %H:%M:%S")
