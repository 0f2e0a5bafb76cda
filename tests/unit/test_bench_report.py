"""The bench's statistics, ratios and tables: medians, same-run ratios, skipped peers."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import compare
from bench.harness import Metric, median, percentile
from bench.peer_run import _parsed, _result
from bench.report import Report, Row, markdown

MS = Metric("total", "start → completed", "ms", target=30.0)


def _report() -> Report:
    report = Report(revision="test")
    report.rows = [
        Row("seq100", MS, [40.0, 30.0, 50.0]),
        Row("seq100", Metric("total", "start → completed", "ms"), [100.0], system="temporal"),
        Row("seq100", Metric("total", "start → completed", "ms"), [200.0, 300.0], "dbos"),
        Row("seq100", Metric("total", "start → completed", "ms"), [120.0], "conveyor-temporal"),
    ]
    report.skipped[("prefect", "seq100")] = "not offered: no such thing"
    return report


def test_median_and_percentile() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_ratio_is_conveyors_median_over_the_peers() -> None:
    report = _report()
    mine = compare.find(report, "conveyor", "seq100", "total")
    theirs = compare.find(report, "dbos", "seq100", "total")

    assert compare.ratio(mine, theirs) == pytest.approx(40.0 / 250.0)
    assert compare.ratio(mine, None) is None
    assert compare.ratio(mine, Row("seq100", MS, [0.0], "temporal")) is None
    assert compare.ratio_text(0.16) == "0.16×"
    assert compare.ratio_text(None) == "—"
    assert compare.ratio_text(0.00054) == "0.00054×"
    assert compare.ratio_text(42.4) == "42×"


def test_the_comparison_table_shows_medians_ranges_ratios_and_skips() -> None:
    lines = compare.table(_report())

    assert lines[0].startswith("| figure | Conveyor embedded | Conveyor on Temporal |")
    assert "Conveyor ÷ DBOS" in lines[0]
    assert "Conveyor/T ÷ Temporal" in lines[0]
    row = lines[2]
    assert "40.0 ms (30.0–50.0)" in row
    assert "not offered" in row  # Prefect
    assert "0.40×" in row  # Conveyor ÷ Temporal
    assert "0.16×" in row  # Conveyor ÷ DBOS
    assert "1.20×" in row  # Conveyor on Temporal ÷ Temporal


def test_the_temporal_bound_is_checked_per_workload() -> None:
    assert list(compare.bound_lines(_report())) == [
        "pass: Conveyor on Temporal ÷ hand-written Temporal, seq100: 1.20× (bound 1.3×)"
    ]
    report = _report()
    report.rows[3] = Row("seq100", MS, [140.0], "conveyor-temporal")
    assert next(iter(compare.bound_lines(report))).startswith("MISSED")


def test_markdown_keeps_the_targets_to_conveyor_and_adds_the_comparison() -> None:
    report = _report()
    text = markdown(report)

    assert report.targets == [report.rows[0]]  # Peers' figures have no target.
    assert "## Against peers, measured in the same run" in text
    assert "Prefect 3, seq100: not offered: no such thing" in text
    assert "## README table (medians; paste as it is)" in text
    assert "| seq100: start → completed | 40.0 ms | 120 ms | 100 ms | — | 250 ms |" in text


def test_conveyor_alone_has_no_comparison() -> None:
    report = Report(revision="test")
    report.rows = [Row("seq100", MS, [40.0])]
    assert "Against peers" not in markdown(report)


def test_chart_is_written_when_matplotlib_is_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = compare.chart(_report(), tmp_path / "latest.png")
    assert path is not None
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_peers_result_is_its_last_line_of_json() -> None:
    out = b'progress\n{"samples": {"total": [1.5, 2.5]}}\n'
    assert _parsed(_result(out) or {}).samples == {"total": [1.5, 2.5]}
    assert _parsed({"skipped": "not offered: no"}).skipped == "not offered: no"
    assert _result("half a line {") is None
    assert _result(None) is None


def test_systems_default_to_conveyor_and_peers_adds_every_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.__main__ import _parser

    assert _parser().parse_args([]).systems == ["conveyor"]
    assert _parser().parse_args(["--peers"]).systems == list(compare.SYSTEMS)
    assert _parser().parse_args(["--systems", "dbos"]).systems == ["dbos"]
    with pytest.raises(SystemExit):
        _parser().parse_args(["--systems", "nope"])
    assert "unknown system(s) nope" in capsys.readouterr().err


def test_a_rate_target_is_a_lower_bound() -> None:
    rate = Metric("throughput", "events a second", "/s", 2000.0, at_least=True)
    assert Row("http_events", rate, [2500.0]).verdict == "pass"
    slow = Row("http_events", rate, [500.0, 600.0, 700.0])
    assert slow.verdict == "FAIL"
    assert slow.target == "≥ 2000 /s"
    assert "under by 1,400 /s (-70%)" in slow.miss()
