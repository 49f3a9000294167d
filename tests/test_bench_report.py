"""android_bench/report.py: write_bench_reports leaves the report it is given as it is, and returns
the report it wrote (ms/GMAC per configuration, `files`); the Markdown table's spread columns follow
the mode (the host's median / p90, benchmark_model's min / max)."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from oace.android_bench.common import aggregate, new_report
from oace.android_bench.profiles import get_profile
from oace.android_bench.report import write_bench_reports

MODEL = {"path": "m_int8.tflite", "bytes": 10, "sha256": "0" * 64, "preprocessing_in_graph": True,
         "macs": {"gmacs": 2.0, "precision": "int8"}}


def _run(avg: float) -> dict:
    return {"status": "ok", "init_ms": 20.0, "first_inference_ms": avg + 9, "inference_avg_ms": avg,
            "inference_std_ms": 1.5, "inference_min_ms": avg - 4, "inference_max_ms": avg + 6,
            "inference_median_ms": avg - 1, "inference_p90_ms": avg + 3, "samples_ms": [avg - 1, avg, avg + 1]}


def _report(mode: str) -> dict:
    report = new_report(mode, MODEL, get_profile(None), ["oace", "bench", mode])
    for threads, avg in ((1, 100.0), (4, 40.0)):
        runs = [_run(avg)]
        report["configurations"].append({"name": f"cpu-{threads}t", "delegate": "cpu", "threads": threads,
                                         "repeats": runs, "aggregate": aggregate(runs),
                                         "verdict": {"result": "PASS", "warnings": []}})
    return report


@pytest.mark.parametrize("mode", ["host", "device"])
def test_write_bench_reports_leaves_its_argument_unchanged_and_returns_what_it_wrote(mode, tmp_path):
    report = _report(mode)
    before = copy.deepcopy(report)
    written = write_bench_reports(report, tmp_path)
    assert report == before
    assert [c["ms_per_gmac"] for c in written["configurations"]] == [50.0, 20.0]
    assert written["files"] == {"json": str(tmp_path / "bench.json"), "md": str(tmp_path / "bench.md"),
                                "png": str(tmp_path / "latency.png")}
    assert {k: v for k, v in written.items() if k != "files"} == {**before, "configurations": written["configurations"]}
    assert [{k: v for k, v in c.items() if k != "ms_per_gmac"} for c in written["configurations"]] \
        == before["configurations"]
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data.pop("non_finite_fields") == [] and data == json.loads(json.dumps(written))
    assert (tmp_path / "latency.png").stat().st_size > 0
    assert write_bench_reports(report, tmp_path) == written  # again: the same report, nothing accumulated


@pytest.mark.parametrize("mode,heads,cells", [
    ("host", ("median ms", "p90 ms"), ("39.0", "43.0")),
    ("device", ("min ms", "max ms"), ("36.0", "46.0")),
])
def test_the_spread_columns_follow_the_mode(mode, heads, cells, tmp_path):
    write_bench_reports(_report(mode), tmp_path)
    lines = (tmp_path / "bench.md").read_text().splitlines()
    head = next(line for line in lines if line.startswith("| config |")).split(" | ")
    row = next(line for line in lines if line.startswith("| cpu-4t |")).split(" | ")
    assert (head[8], head[9]) == heads and (row[8], row[9]) == cells
    assert "p50" not in "\n".join(lines)


def test_aggregate_names_the_median_inference_median_ms():
    agg = aggregate([_run(40.0), _run(50.0)])
    assert agg["inference_median_ms"] == pytest.approx(44.0) and "inference_p50_ms" not in agg
    assert dataclasses.is_dataclass(get_profile(None))
