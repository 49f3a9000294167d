"""Class 8 for the bench: every JSON it prints or writes is strict RFC 8259 (no NaN / Infinity), and a
log with impossible figures (negative or non-finite times, min > max, an average outside min..max)
is never `ok`: its status is `invalid` and `invalid_figures` says which figure and why."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from oace.android_bench.limits import dumps_strict
from oace.android_bench.parse import parse_benchmark_log
from oace.android_bench.runner import BenchAborted, DeviceBenchConfig, bench_device
from tests.cli_contract import assert_refused, run_oace
from fakes.adb_double import install_fake_adb, s23
from fakes.tiny_tflite import build_tiny_bundle


def strict_loads(text: str):
    def refuse(token):
        raise AssertionError(f"non-RFC 8259 token {token} in JSON output")

    return json.loads(text, parse_constant=refuse)


INFINITE = """\
INFO: Initialized session in 12.5ms.
INFO: count=50 first=30000 curr=30000 min=29000 max=1e999 avg=30000 std=nan
INFO: Inference timings in us: Init: 12500, First inference: 31000, Warmup (avg): inf, Inference (avg): 30000
"""

NEGATIVE = """\
INFO: count=3 first=31000 curr=30500 min=30000 max=31000 avg=30500 std=400
INFO: count=50 first=30000 curr=30000 min=-29000 max=31000 avg=30000 std=250
INFO: Inference timings in us: Init: -12500, First inference: 31000, Warmup (avg): 30500, Inference (avg): 30000
"""

MIN_OVER_MAX = """\
========== BENCHMARK RESULTS ==========
Model initialization: 21.37 ms
Warmup (first):       40.00 ms
Warmup (avg):         35.00 ms (5 runs)
Inference (avg):      30.00 ms (50 runs)
Inference (min):      33.00 ms
Inference (max):      31.00 ms
Inference (std):      0.50
"""


@pytest.mark.parametrize("log,expect", [
    (INFINITE, ["inference_max_ms is inf", "inference_std_ms is nan", "warmup_avg_ms is inf"]),
    (NEGATIVE, ["init_ms = -12.5 is negative", "inference_min_ms = -29 is negative"]),
    (MIN_OVER_MAX, ["inference_min_ms = 33 > inference_avg_ms = 30", "inference_min_ms = 33 > inference_max_ms = 31"]),
], ids=["non-finite", "negative", "min-over-max"])
def test_cli_json_is_strict_and_impossible_figures_are_flagged(tmp_path, log, expect):
    path = tmp_path / "bench.log"
    path.write_text(log)
    res = run_oace(["bench", "parse", path, "--json"], timeout=120)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    data = strict_loads(res.stdout)
    assert data["status"] == "invalid"
    for e in expect:
        assert any(e in f for f in data["invalid_figures"]), (e, data["invalid_figures"])
    for key in ("init_ms", "first_inference_ms", "warmup_avg_ms", "inference_avg_ms", "inference_std_ms",
                "inference_min_ms", "inference_max_ms"):
        assert data[key] is None or math.isfinite(data[key])
    text = run_oace(["bench", "parse", path], timeout=120)
    assert text.returncode == 0 and "invalid figure" in text.stdout and "status               invalid" in text.stdout


def test_sound_logs_stay_ok_with_no_flags():
    got = parse_benchmark_log(NEGATIVE.replace("-", ""))
    assert got["status"] == "ok" and got["invalid_figures"] == []


def test_non_finite_values_anywhere_become_null_and_are_listed():
    text = dumps_strict({"a": float("nan"), "b": [1.0, float("-inf"), {"c": np.float32("inf")}], "d": np.float64(2.5)})
    data = strict_loads(text)
    assert data == {"a": None, "b": [1.0, None, {"c": None}], "d": 2.5, "non_finite_fields": ["$.a", "$.b[1]", "$.b[2].c"]}
    got = parse_benchmark_log(
        "Operator-wise Profiling Info for Regular Benchmark Runs:\nTimings (microseconds): count=50 first=1 curr=1 "
        "min=1 max=inf avg=1 std=0\nInference timings in us: Init: 1, First inference: 2, Warmup (avg): 2, Inference (avg): 1\n")
    assert got["op_profile"]["max_ms"] is None and got["status"] == "invalid"
    assert any("op_profile.max_ms" in f for f in got["invalid_figures"])


FAKE_BAD_BENCH = """#!/bin/sh
echo "INFO: STARTING!"
echo "INFO: Initialized session in 12.5ms."
echo "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=1 curr=31000"
echo "INFO: Running benchmark for at least 20 iterations and at least 1 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=20 first=30000 curr=30000 min=31000 max=29000 avg=30000 std=-250"
echo "INFO: Inference timings in us: Init: 12500, First inference: 31000, Warmup (avg): 31000, Inference (avg): 1e999"
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


@pytest.mark.slow
def test_device_bench_with_impossible_figures_writes_strict_json_and_stops(tmp_path, monkeypatch, tiny_model):
    install_fake_adb(tmp_path, monkeypatch, [s23()])
    binary = tmp_path / "benchmark_model"
    binary.write_text(FAKE_BAD_BENCH)
    binary.chmod(0o755)
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_model.read_bytes())
    out = tmp_path / "out"
    with pytest.raises(BenchAborted, match=r"cpu-4t r1: invalid \(.*\)"):
        bench_device(model, DeviceBenchConfig(benchmark_binary=binary, out=out, threads="4", repeats=1, cooldown=0,
                                              progress=False, runs=20, warmup=1))
    rep = strict_loads((out / "bench.json").read_text())
    run = rep["configurations"][0]["repeats"][0]
    assert run["status"] == "invalid" and run["inference_avg_ms"] is None
    assert rep["configurations"][0]["verdict"]["result"] == "NO DATA"  # never a PASS on impossible figures
    res = run_oace(["bench", "device", model, "--serial", "auto", "--benchmark-binary", binary, "--threads", "4",
                    "--repeats", "1", "--cooldown", "0", "--out", tmp_path / "cli"], timeout=240)
    assert_refused(res, "cpu-4t r1: invalid (", "inference_min_ms", max_seconds=200)
    strict_loads((tmp_path / "cli" / "bench.json").read_text())


def test_a_tf1_no_stats_average_below_the_with_stats_run_is_not_an_impossible_figure():
    # TF1's summary average ("no stats") is another run than the count= line ("with stats"):
    # it may lie outside that line's min..max without anything being wrong
    log = ("count=1 curr=169371\n"
           "count=61 first=143913 curr=150588 min=160000 max=256518 avg=165940 std=28180\n"
           "Average inference timings in us: Warmup: 169371, no stats: 154047, with stats: 165939\n")
    got = parse_benchmark_log(log)
    assert got["status"] == "ok" and got["invalid_figures"] == []
    assert got["inference_avg_ms"] == pytest.approx(154.047) and got["inference_min_ms"] == pytest.approx(160.0)
