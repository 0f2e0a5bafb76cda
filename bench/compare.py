"""Conveyor against its peers measured in the same run: ratios, tables and a chart.

A ratio is Conveyor's median divided by the peer's: below 1 Conveyor is faster (or smaller).
Each is taken only between figures of one `python -m bench` invocation, on the same machine
under the same load, never against an older file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.report import Report, Row

SYSTEMS: dict[str, str] = {
    "conveyor": "Conveyor embedded",
    "conveyor-temporal": "Conveyor on Temporal",
    "temporal": "Temporal (hand-written)",
    "prefect": "Prefect 3",
    "dbos": "DBOS on SQLite",
}
PAIRS: tuple[tuple[str, str], ...] = (
    ("conveyor", "temporal"),
    ("conveyor", "prefect"),
    ("conveyor", "dbos"),
    ("conveyor-temporal", "temporal"),
)
"""(system, peer) pairs whose ratio each row shows."""

TEMPORAL_BOUND = 1.3
"""Conveyor on Temporal may take at most this many times the hand-written workflow's time."""
BOUNDED = ("seq100", "par100")

NOTES = (
    "waiting10k/waiting100k: RSS is the one process holding the runs for Conveyor embedded "
    "and DBOS, and the dev server's plus the worker process's for hand-written Temporal; "
    "routing is from sending the event (a signal, DBOS.send) until the run's result is there",
    "seq100/par100/par1000 on Temporal: from starting the workflow until its result is "
    "available; Conveyor's `via_wait` adds the query `backend.wait()` makes for the run view",
    "event_resume: until the step after the waiting one starts executing (a marker action or "
    "activity or step in the same process as the sender)",
)
"""What each kind of figure means across systems, shown under the table when it applies."""

CHARTED = (
    ("seq100", "total"),
    ("par100", "total"),
    ("par1000", "total"),
    ("event_resume", "median"),
    ("waiting10k", "rss"),
    ("waiting10k", "p99"),
)


def figures(report: Report) -> list[tuple[str, str]]:
    """Every (workload, metric key) measured by anyone, in the order first measured."""
    seen: list[tuple[str, str]] = []
    for row in report.rows:
        if (row.workload, row.metric.key) not in seen:
            seen.append((row.workload, row.metric.key))
    return seen


def find(report: Report, system: str, workload: str, key: str) -> Row | None:
    """The row of `system` for that figure, if it measured it."""
    for row in report.rows:
        if (row.system, row.workload, row.metric.key) == (system, workload, key):
            return row
    return None


def ratio(mine: Row | None, theirs: Row | None) -> float | None:
    """`mine`'s median over `theirs`, when both exist and the divisor is not zero."""
    if mine is None or theirs is None or not mine.samples or not theirs.samples:
        return None
    if theirs.median == 0:
        return None
    return mine.median / theirs.median


def ratio_text(value: float | None) -> str:
    """A ratio as `0.42×`, or `—` when there is none."""
    if value is None or math.isnan(value):
        return "—"
    if value >= 10:
        return f"{value:.0f}×"
    # Two significant digits below 0.1, so 1/2000 does not read as zero.
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"


def cell(report: Report, system: str, workload: str, key: str) -> str:
    """`median (min–max)`, or why there is no figure."""
    row = find(report, system, workload, key)
    if row is not None:
        low, high = min(row.samples), max(row.samples)
        if len(row.samples) == 1:
            return row.value(row.median)
        return f"{row.value(row.median)} ({_short(row, low)}–{_short(row, high)})"
    reason = report.skipped.get((system, workload))
    if reason is None:
        return "—"
    return "not offered" if reason.startswith("not offered") else "skipped"


def _short(row: Row, value: float) -> str:
    return row.value(value).rsplit(" ", 1)[0]


def _label(report: Report, workload: str, key: str) -> str:
    for row in report.rows:
        if (row.workload, row.metric.key) == (workload, key):
            return f"{workload}: {row.metric.label}"
    return f"{workload}: {key}"


def _systems(report: Report) -> list[str]:
    present = {row.system for row in report.rows} | {s for s, _ in report.skipped}
    return [system for system in SYSTEMS if system in present]


def _pairs(report: Report) -> list[tuple[str, str]]:
    present = set(_systems(report))
    return [(a, b) for a, b in PAIRS if a in present and b in present]


def table(report: Report) -> list[str]:
    """The comparison as Markdown table lines: one row per figure, a column per system."""
    systems, pairs = _systems(report), _pairs(report)
    header = ["figure", *(SYSTEMS[s] for s in systems)]
    header += [f"{_short_name(a)} ÷ {_short_name(b)}" for a, b in pairs]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for workload, key in figures(report):
        cells = [_label(report, workload, key)]
        cells += [cell(report, system, workload, key) for system in systems]
        cells += [
            ratio_text(ratio(find(report, a, workload, key), find(report, b, workload, key)))
            for a, b in pairs
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _short_name(system: str) -> str:
    return {
        "conveyor": "Conveyor",
        "conveyor-temporal": "Conveyor/T",
        "temporal": "Temporal",
        "prefect": "Prefect",
        "dbos": "DBOS",
    }[system]


def bound_lines(report: Report) -> Iterator[str]:
    """Whether Conveyor on Temporal stays within `TEMPORAL_BOUND` of the hand-written workflow."""
    for workload in BOUNDED:
        value = ratio(
            find(report, "conveyor-temporal", workload, "total"),
            find(report, "temporal", workload, "total"),
        )
        if value is None:
            continue
        verdict = "pass" if value <= TEMPORAL_BOUND else "MISSED"
        yield (
            f"{verdict}: Conveyor on Temporal ÷ hand-written Temporal, {workload}: "
            f"{value:.2f}× (bound {TEMPORAL_BOUND:g}×)"
        )


def readme_table(report: Report) -> list[str]:
    """A short table of medians for the README, to paste as it is."""
    systems = _systems(report)
    lines = [
        "| workload | " + " | ".join(SYSTEMS[s] for s in systems) + " |",
        "|---" + "|---:" * len(systems) + "|",
    ]
    for workload, key in figures(report):
        if (workload, key) not in CHARTED and key not in ("total", "median", "rss", "p99"):
            continue
        cells = [_label(report, workload, key)]
        for system in systems:
            row = find(report, system, workload, key)
            cells.append(row.value(row.median) if row is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: Report) -> list[str]:
    """The section of `latest.md` that compares systems."""
    if len(_systems(report)) < 2:
        return []
    lines = [
        "## Against peers, measured in the same run",
        "",
        "Median (min–max) over the repeats; a ratio is the first system's median over the "
        "second's (below 1: the first is faster or smaller). Conveyor/T is Conveyor on Temporal.",
        "",
        *table(report),
        "",
    ]
    lines += [f"- {line}" for line in bound_lines(report)]
    lines += [f"- {line}" for line in NOTES if any(row.workload in line for row in report.rows)]
    for (system, workload), reason in report.skipped.items():
        lines.append(f"- {SYSTEMS.get(system, system)}, {workload}: {reason}")
    lines += [
        "",
        "## README table (medians; paste as it is)",
        "",
        "```markdown",
        *readme_table(report),
        "```",
    ]
    return lines


def ratios_json(report: Report) -> list[dict[str, Any]]:
    """Every ratio, machine-readable."""
    found = []
    for workload, key in figures(report):
        for a, b in PAIRS:
            value = ratio(find(report, a, workload, key), find(report, b, workload, key))
            if value is not None:
                found.append(
                    {"workload": workload, "metric": key, "system": a, "peer": b, "ratio": value}
                )
    return found


def chart(report: Report, path: Path) -> Path | None:
    """Medians with min–max bars per system for the main figures, as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    shown = [(w, k) for w, k in CHARTED if any(find(report, s, w, k) for s in SYSTEMS)]
    if not shown:
        return None
    systems = _systems(report)
    columns = min(3, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for index, (workload, key) in enumerate(shown):
        axis = axes[index // columns][index % columns]
        names, medians, below, above, unit = [], [], [], [], ""
        for system in systems:
            row = find(report, system, workload, key)
            if row is None:
                continue
            names.append(_short_name(system))
            medians.append(row.median)
            below.append(row.median - min(row.samples))
            above.append(max(row.samples) - row.median)
            unit = row.metric.unit
        axis.bar(
            range(len(names)),
            medians,
            yerr=[below, above],
            capsize=3,
            color=[colours(SYSTEM_INDEX[_long(n)]) for n in names],
        )
        axis.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        axis.set_yscale("log")
        axis.set_title(_label(report, workload, key), fontsize=9)
        axis.set_ylabel(unit)
    for index in range(len(shown), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.suptitle("Conveyor and peers, same run (median, min–max; log scale)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


SYSTEM_INDEX = {system: index for index, system in enumerate(SYSTEMS)}


def _long(short: str) -> str:
    return next(system for system in SYSTEMS if _short_name(system) == short)
