"""`python -m bench [--only NAME[,NAME]] [--repeat N] [--quick] [--peers | --systems S,...]`.

Without `--peers` only Conveyor embedded is measured (no install, no server). With it, each
workload also runs on Conveyor on Temporal and on each peer (`bench.peer_envs.PEERS`), each in
its own virtualenv, and the report adds the same-run ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import traceback
from pathlib import Path

from rich.console import Console

from bench.compare import SYSTEMS
from bench.event_resume import WORKLOAD as EVENT_RESUME
from bench.harness import Options, Workload
from bench.http_events import WORKLOAD as HTTP_EVENTS
from bench.http_events import WORKLOAD_FULL as HTTP_EVENTS_FULL
from bench.par1000 import PAR100
from bench.par1000 import WORKLOAD as PAR1000
from bench.peer_envs import CACHE
from bench.report import Report, Row, print_table, write
from bench.seq100 import WORKLOAD as SEQ100
from bench.seq100 import WORKLOAD_FULL as SEQ100_FULL
from bench.systems import run_systems
from bench.waiting import WAITING_10K, WAITING_100K

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        SEQ100,
        SEQ100_FULL,
        PAR100,
        PAR1000,
        EVENT_RESUME,
        HTTP_EVENTS,
        HTTP_EVENTS_FULL,
        WAITING_10K,
        WAITING_100K,
    )
}
"""Every workload by name; a new module adds its `Workload` here (peers skip unknown ones)."""
RESULTS = Path(__file__).resolve().parent / "results"
PROFILE_REPEATS = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the embedded engine. Exits 0 whatever the figures are, 1 only "
        "when a workload crashed.",
        epilog="workloads: "
        + "; ".join(
            f"{w.name} ({w.description}, {w.default_repeat} repeat(s) by default)"
            for w in WORKLOADS.values()
        ),
    )
    parser.add_argument(
        "--only",
        type=_names,
        default=list(WORKLOADS),
        metavar="NAME[,NAME]",
        help=f"run only these workloads (of {', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=None,
        metavar="N",
        help="repeats of each workload (default: 5; waiting100k 1, waiting10k 3)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller workloads where a size is not the point (fewer events; waiting100k "
        "starts 10,000 runs)",
    )
    systems = parser.add_mutually_exclusive_group()
    systems.add_argument(
        "--peers",
        action="store_const",
        const=list(SYSTEMS),
        dest="systems",
        help="also measure Conveyor on Temporal and every peer (installs each peer into "
        "bench/.peers/ the first time)",
    )
    systems.add_argument(
        "--systems",
        type=_systems,
        default=["conveyor"],
        metavar="S[,S]",
        help=f"which systems to measure (of {', '.join(SYSTEMS)}; default: conveyor)",
    )
    # Both options share `systems`; `--peers`' own default (None) would otherwise win.
    parser.set_defaults(systems=["conveyor"])
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        metavar="DIR",
        help=f"where latest.md and latest.json go (default: {RESULTS})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"also run each in-process workload {PROFILE_REPEATS} times under cProfile (the "
        "measured part only, added up) "
        "and write profile-NAME.txt into --out",
    )
    return parser


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(WORKLOADS)}"
        )
    return names


def _systems(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown system(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SYSTEMS)}"
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _run(workload: Workload, repeat: int, quick: bool, report: Report, console: Console) -> None:
    samples: dict[str, list[float]] = {metric.key: [] for metric in workload.metrics}
    for index in range(repeat):
        gc.collect()
        options = Options(quick=quick, timeout=workload.timeout)
        values = workload.measure(options)
        for note in options.notes:
            if note not in report.notes:
                report.notes.append(note)
        for metric in workload.metrics:
            samples[metric.key].append(values[metric.key])
        shown = ", ".join(
            f"{metric.key} {values[metric.key]:.3f} {metric.unit}" for metric in workload.metrics
        )
        console.print(f"  {workload.name} {index + 1}/{repeat}: {shown}", highlight=False)
    report.rows += [Row(workload.name, metric, samples[metric.key]) for metric in workload.metrics]


def _profile(workload: Workload, quick: bool, out: Path, console: Console) -> None:
    profiler = cProfile.Profile()
    for _ in range(PROFILE_REPEATS):
        gc.collect()
        workload.measure(Options(quick=quick, timeout=workload.timeout, profiler=profiler))
    text = io.StringIO()
    for order in ("tottime", "cumulative"):
        text.write(
            f"==== {workload.name}: the measured part only, {PROFILE_REPEATS} repeats, "
            f"sorted by {order} ====\n"
        )
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(40)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile-{workload.name}.txt"
    path.write_text(text.getvalue())
    console.print(f"  {workload.name}: profile written to {path}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen workloads, print the table, write the results; 1 if one crashed."""
    args = _parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    report = Report(quick=args.quick)
    for name in args.only:
        workload = WORKLOADS[name]
        repeat = args.repeat or workload.default_repeat
        report.repeats[name] = repeat
        console.print(f"[bold]{name}[/]: {workload.description} ({repeat} repeat(s))")
        if "conveyor" in args.systems:
            try:
                _run(workload, repeat, args.quick, report, console)
                if args.profile and workload.in_process:
                    _profile(workload, args.quick, args.out, console)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                traceback.print_exc()
                report.errors[name] = f"{type(exc).__name__}: {exc}".strip()
        others = [system for system in args.systems if system != "conveyor"]
        if others and workload.compared:
            run_systems(workload, others, repeat, args.quick, report, CACHE / "logs")
    console.print()
    print_table(report, console)
    md, js = write(report, args.out)
    console.print(f"written: {md} and {js}", highlight=False)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
