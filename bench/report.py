"""The results: one row per figure, shown as a Rich table and written as Markdown and JSON."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import compare
from bench.harness import Metric, median


def revision() -> str:
    """The commit measured, and whether the tree had uncommitted changes under `src/`."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} (with uncommitted changes in src/)" if dirty else commit


@dataclass
class Row:
    """One figure of one workload over its repeats."""

    workload: str
    metric: Metric
    samples: list[float]
    system: str = "conveyor"
    """Which system measured it: `conveyor` (embedded) or a key of `bench.compare.SYSTEMS`."""

    @property
    def median(self) -> float:
        return median(self.samples)

    @property
    def met(self) -> bool | None:
        """Whether the median is within the target (None: no target)."""
        if self.metric.target is None:
            return None
        if self.metric.at_least:
            return self.median >= self.metric.target
        return self.median <= self.metric.target

    @property
    def verdict(self) -> str:
        met = self.met
        return "—" if met is None else ("pass" if met else "FAIL")

    @property
    def target(self) -> str:
        if self.metric.target is None:
            return "—"
        bound = "≥" if self.metric.at_least else "≤"
        return f"{bound} {self.metric.target:g} {self.metric.unit}"

    def value(self, value: float) -> str:
        return f"{_number(value)} {self.metric.unit}"

    def miss(self) -> str:
        """How far the median is on the wrong side of the target."""
        target = self.metric.target
        assert target is not None
        off = self.median - target
        side = "under" if self.metric.at_least else "over"
        return (
            f"{self.workload} {self.metric.label}: median {self.value(self.median)} "
            f"against {self.target}, {side} by {self.value(abs(off))} ({off / target:+.0%})"
        )


@dataclass
class Report:
    """Everything one `python -m bench` invocation measured."""

    rows: list[Row] = field(default_factory=list)
    repeats: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)
    """Why a (system, workload) pair has no figures: not offered, not installable, too slow."""
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load: tuple[float, float, float] = field(default_factory=os.getloadavg)
    revision: str = field(default_factory=revision)

    @property
    def own(self) -> list[Row]:
        """The rows of Conveyor embedded, the ones with targets."""
        return [row for row in self.rows if row.system == "conveyor"]

    @property
    def missed(self) -> list[Row]:
        return [row for row in self.own if row.met is False]

    @property
    def targets(self) -> list[Row]:
        return [row for row in self.own if row.met is not None]

    def summary(self) -> list[str]:
        """Which targets are met, which are missed by how much, which workloads crashed."""
        lines = [f"{len(self.targets) - len(self.missed)} of {len(self.targets)} targets met."]
        lines += [f"MISSED: {row.miss()}" for row in self.missed]
        lines += [f"CRASHED: {name}: {error}" for name, error in self.errors.items()]
        return lines


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cores": usable,
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def _number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


_HEADER = ("workload", "figure", "repeats", "median", "min", "max", "target", "result")
_NUMERIC = ("repeats", "median", "min", "max")
_CAPTION = "median, min and max over the repeats; pass/FAIL compares the median to the target"


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.workload,
        row.metric.label,
        str(len(row.samples)),
        row.value(row.median),
        row.value(min(row.samples)),
        row.value(max(row.samples)),
        row.target,
        row.verdict,
    )


def _repeat_text(report: Report) -> str:
    counts = sorted(set(report.repeats.values()))
    if len(counts) <= 1:
        return str(counts[0]) if counts else "0"
    return ", ".join(f"{name} {count}" for name, count in report.repeats.items())


def _header_lines(report: Report) -> list[str]:
    info = machine()
    load = " / ".join(f"{value:.2f}" for value in report.load)
    return [
        f"date: {report.started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"load average (1, 5, 15 min) when it started: {load}",
        f"machine: {info['cores']} cores ({info['cpu']}), {info['implementation']} "
        f"{info['python']}, SQLite {info['sqlite']}, {info['platform']}",
        f"repeats: {_repeat_text(report)}" + (" (--quick)" if report.quick else ""),
        f"code: {report.revision}",
        "engine: LocalBackend, SQLite file in a temp dir, WAL, synchronous=NORMAL",
    ]


def print_table(report: Report, console: Console) -> None:
    """The results as a Rich table, then the verdicts."""
    table = Table(title="Conveyor benchmarks (embedded engine)", caption=_CAPTION)
    for name in _HEADER:
        if name in _NUMERIC:
            table.add_column(name, justify="right")
        else:
            table.add_column(name)
    for row in report.own:
        cells = list(_cells(row))
        style = {"pass": "green", "FAIL": "bold red"}.get(row.verdict)
        if style:
            cells[-1] = f"[{style}]{cells[-1]}[/]"
        table.add_row(*cells)
    for name, error in report.errors.items():
        table.add_row(name, "[bold red]crashed[/]", "", "", "", "", "", f"[bold red]{error}[/]")
    for line in _header_lines(report):
        console.print(line, highlight=False)
    console.print(table)
    for line in report.notes:
        console.print(f"note: {line}", highlight=False)
    for line in report.summary():
        style = "red" if line.startswith(("MISSED", "CRASHED")) else "green"
        console.print(f"[{style}]{line}[/]", highlight=False)
    comparison = compare.markdown(report)
    if comparison:
        console.print()
        # The Markdown section as it is written, so what is read here can be pasted.
        console.print("\n".join(comparison), highlight=False, markup=False)


def markdown(report: Report) -> str:
    """The same table as Markdown, with the date, the machine and the repeat counts."""
    lines = ["# Conveyor benchmarks", ""]
    lines += [f"- {line}" for line in _header_lines(report)]
    lines += [
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join("---:" if h in _NUMERIC else "---" for h in _HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report.own]
    lines += [f"| {name} | crashed | | | | | | {error} |" for name, error in report.errors.items()]
    lines += ["", _CAPTION + ".", ""]
    lines += [f"- {line}" for line in report.notes + report.summary()]
    lines += ["", *compare.markdown(report)]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> dict[str, Any]:
    """Everything, machine-readable."""
    return {
        "date": report.started.isoformat(),
        "machine": machine(),
        "load_average": report.load,
        "revision": report.revision,
        "quick": report.quick,
        "repeats": report.repeats,
        "argv": sys.argv[1:],
        "results": [
            {
                "system": row.system,
                "workload": row.workload,
                "metric": row.metric.key,
                "label": row.metric.label,
                "unit": row.metric.unit,
                "samples": row.samples,
                "median": row.median,
                "min": min(row.samples),
                "max": max(row.samples),
                "target": row.metric.target,
                "met": row.met,
            }
            for row in report.rows
        ],
        "errors": report.errors,
        "skipped": [
            {"system": system, "workload": workload, "reason": reason}
            for (system, workload), reason in report.skipped.items()
        ],
        "ratios": compare.ratios_json(report),
        "notes": report.notes,
    }


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write `latest.md`, `latest.json` and (with matplotlib) `latest.png` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / "latest.md"
    md.write_text(markdown(report))
    js = directory / "latest.json"
    js.write_text(json.dumps(as_json(report), indent=2) + "\n")
    compare.chart(report, directory / "latest.png")
    return md, js
