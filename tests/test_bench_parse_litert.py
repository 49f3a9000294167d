"""LiteRT 2.x benchmark_model logs (litert/tools, CompiledModel API): the `BENCHMARK RESULTS` block,
with and without the `INFO: [benchmark_litert_model.h:NN]` prefix, with a signature line, with the
GPU and NPU accelerators. Fixtures: tests/fixtures/bench/litert2_*.log (written from the tool's
format strings; every expected figure below is read off those files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oace.android_bench.parse import FIELDS, parse_benchmark_log, parse_log_file
from tests.cli_contract import run_oace

FIX = Path(__file__).resolve().parent / "fixtures" / "bench"

CPU = dict(status="ok", init_ms=21.37, first_inference_ms=1012.48, warmup_avg_ms=987.21, warmup_runs=5,
           inference_avg_ms=961.05, runs=50, inference_min_ms=944.12, inference_max_ms=1003.66,
           inference_std_ms=12.40, throughput_mb_s=0.82, memory_init_mb=6.25, memory_overall_mb=118.40,
           memory_peak_monitored_mb=None, peak_memory_mb=118.40, log_format="litert2", invalid_figures=[],
           errors=[])

CASES = [
    ("litert2_cpu_prefixed.log", CPU),
    ("litert2_cpu_plain.log", CPU),
    ("litert2_signature_each_line_prefixed.log", dict(
        status="ok", init_ms=35.90, first_inference_ms=1544.02, warmup_avg_ms=1530.77, warmup_runs=1,
        inference_avg_ms=1498.31, runs=20, inference_min_ms=1487.60, inference_max_ms=1522.09,
        inference_std_ms=9.85, throughput_mb_s=0.53, memory_init_mb=11.02, memory_overall_mb=160.75,
        memory_peak_monitored_mb=171.50, peak_memory_mb=171.50, signature="serving_default", threads=2,
        graph="/data/local/tmp/oace_segmenter_fp16.tflite", delegate=None)),
    ("litert2_gpu.log", dict(
        status="ok", init_ms=842.61, first_inference_ms=131.07, warmup_avg_ms=118.92, warmup_runs=10,
        inference_avg_ms=104.30, runs=100, inference_min_ms=99.81, inference_max_ms=112.44, inference_std_ms=2.17,
        throughput_mb_s=7.54, memory_init_mb=48.31, memory_overall_mb=96.06, peak_memory_mb=212.88,
        delegate="gpu", delegation="full", delegate_kernels=1, delegates_requested=["gpu"], fell_back_to_cpu=False)),
    ("litert2_npu.log", dict(
        status="ok", init_ms=296.44, first_inference_ms=18.93, warmup_avg_ms=9.12, warmup_runs=1,
        inference_avg_ms=8.47, runs=200, inference_min_ms=8.02, inference_max_ms=10.26, inference_std_ms=0.31,
        throughput_mb_s=None, memory_init_mb=3.88, memory_overall_mb=12.06, memory_peak_monitored_mb=None,
        peak_memory_mb=12.06, delegate="npu", delegation="full", delegate_kernels=1, delegates_requested=["npu"])),
]


@pytest.mark.parametrize("name,expected", CASES, ids=[c[0] for c in CASES])
def test_every_figure_of_the_litert2_block_is_read(name, expected):
    got = parse_log_file(FIX / name)
    assert list(got)[: len(FIELDS)] == list(FIELDS)
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_peak_memory_not_available_is_null_with_a_note_not_an_error():
    got = parse_log_file(FIX / "litert2_npu.log")
    assert got["memory_peak_monitored_mb"] is None and got["errors"] == []
    assert any("Peak memory usage not available" in n for n in got["notes"])
    assert any("No throughput data available" in n for n in got["notes"])


def test_prefixed_and_plain_logs_give_the_same_record():
    a = parse_log_file(FIX / "litert2_cpu_prefixed.log")
    b = parse_log_file(FIX / "litert2_cpu_plain.log")
    assert a == b


def test_a_litert2_run_cut_before_the_memory_block_keeps_its_figures_and_one_without_runs_is_incomplete():
    text = (FIX / "litert2_gpu.log").read_text()
    cut = text[: text.index("Throughput")]
    got = parse_benchmark_log(cut)
    assert got["status"] == "ok" and got["inference_avg_ms"] == pytest.approx(104.30)
    assert got["throughput_mb_s"] is None and got["memory_overall_mb"] is None
    no_runs = parse_benchmark_log(
        "========== BENCHMARK RESULTS ==========\nModel initialization: 12.00 ms\n"
        "Warmup (first):       0.00 ms\nWarmup (avg):         0.00 ms (0 runs)\n"
        "Inference (avg):      0.00 ms (0 runs)\nNo inference runs were performed.\n")
    assert no_runs["status"] == "incomplete" and no_runs["inference_avg_ms"] is None and no_runs["runs"] is None
    assert no_runs["init_ms"] == pytest.approx(12.0)


def test_cli_json_of_a_litert2_log_is_strict_and_complete():
    res = run_oace(["bench", "parse", FIX / "litert2_gpu.log", "--json"], timeout=120)
    assert res.returncode == 0, res.stderr

    def refuse(token):
        raise AssertionError(f"non-RFC 8259 token {token}")

    data = json.loads(res.stdout, parse_constant=refuse)
    assert data["inference_avg_ms"] == pytest.approx(104.30) and data["peak_memory_mb"] == pytest.approx(212.88)
    assert data["non_finite_fields"] == []
