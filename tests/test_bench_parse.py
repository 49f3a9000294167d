"""benchmark_model output parsing: the real phone logs in ../shared and the variants they do not cover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oace.android_bench.parse import FIELDS, parse_benchmark_log, parse_log_file
from oace.cli import main

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "benchmark_model"


def fixture(name: str) -> Path:
    p = FIXTURES / name
    if not p.is_file():
        pytest.skip(f"{p} is absent")
    return p


# (file, expected subset) - every figure is copied from the log itself (us / 1000)
REAL = [
    ("01-nnapi-qtigpu-op-profiling-mi11-tf24.txt", dict(
        status="incomplete", init_ms=None, inference_avg_ms=None, runs=None, delegate="nnapi",
        delegation="partial", delegate_kernels=3, errors=[])),
    ("02-nnapi-qtidefault-failure-mi11-tf24.txt", dict(
        status="failed", init_ms=None, inference_avg_ms=None, delegate="nnapi", delegation="failed",
        threads=4, graph="/data/local/tmp/yolov5s_int8_640.tflite")),
    ("04-cpu-op-profiling-peakmem-oneplus5-tf23era.txt", dict(
        status="ok", init_ms=0.855, first_inference_ms=49.06, warmup_avg_ms=34.8251, inference_avg_ms=33.2094,
        inference_std_ms=0.45, inference_min_ms=32.641, inference_max_ms=34.005, runs=50, warmup_runs=15,
        peak_memory_mb=12.8672, memory_init_mb=0.0, delegate=None, delegation="none", delegate_kernels=None,
        model_size_mb=0.004448, warnings=["Duplicate flags: num_threads"])),
    ("05-gpu-opencl-full-delegation-android-arm-tf2x.txt", dict(
        status="ok", init_ms=870.557, first_inference_ms=130.565, warmup_avg_ms=122.373, inference_avg_ms=119.375,
        inference_std_ms=1.948, inference_min_ms=113.737, inference_max_ms=124.776, runs=50, peak_memory_mb=None,
        delegate="gpu", delegation="full", delegate_kernels=1, fell_back_to_cpu=False)),
    ("06-apk-logcat-nnapi-partial-delegation-tf29.txt", dict(
        status="ok", init_ms=126.059, first_inference_ms=32.942, warmup_avg_ms=12.5819, inference_avg_ms=12.1676,
        inference_std_ms=0.325, inference_min_ms=11.787, inference_max_ms=13.649, runs=75, warmup_runs=40,
        peak_memory_mb=None, delegate="nnapi", delegation="partial", delegate_kernels=44)),
]


@pytest.mark.parametrize("name,expected", REAL, ids=[r[0][:2] for r in REAL])
def test_real_phone_logs_parse_to_their_printed_figures(name, expected):
    got = parse_log_file(fixture(name))
    assert list(got)[: len(FIELDS)] == list(FIELDS)
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_failed_nnapi_compilation_keeps_every_error_line_in_order():
    got = parse_log_file(fixture("02-nnapi-qtidefault-failure-mi11-tf24.txt"))
    assert got["errors"] == [
        "NN API returned error ANEURALNETWORKS_OP_FAILED at line 3779 while completing NNAPI compilation.",
        "Node number 248 (TfLiteNnapiDelegate) failed to prepare.",
        "Restored original execution plan after delegate application failure.",
        "Failed to apply NNAPI delegate.",
        "Benchmarking failed.",
    ]


def test_op_profile_totals_are_kept_apart_from_wall_clock_figures():
    got = parse_log_file(fixture("01-nnapi-qtigpu-op-profiling-mi11-tf24.txt"))
    assert got["inference_avg_ms"] is None  # the summary line was cut from this log: not guessed
    prof = got["op_profile"]
    assert prof["runs"] == 50 and prof["avg_ms"] == pytest.approx(158.715) and prof["std_ms"] == pytest.approx(2.931)
    assert prof["init_total_ms"] == pytest.approx(729.391)
    assert got["delegation_source"] == "op profiling table"


MODERN = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/oace_segmenter_int8.tflite]
INFO: Signature to run: []
INFO: #threads used for CPU inference: [4]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/oace_segmenter_int8.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: XNNPACK delegate created.
VERBOSE: Replacing 58 out of 58 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for the whole graph.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
INFO: The input model file size (MB): 4.38
INFO: Initialized session in 20.123ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=1 curr=905463 p5=905463 median=905463 p95=905463

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=1.0012e+06 curr=998007 min=9.81e+05 max=1.06121e+06 avg=1.00098e+06 std=15490 p5=983333 median=999281 p95=1.04305e+06

INFO: Inference timings in us: Init: 20123, First inference: 905463, Warmup (avg): 905463, Inference (avg): 1.00098e+06
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=6.14844 overall=109.848
INFO: Overall peak memory footprint (MB) via periodic monitoring: 113.25
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 25 MB
"""


def test_modern_litert_output_with_percentiles_exponents_and_new_memory_lines():
    got = parse_benchmark_log(MODERN)
    assert got["status"] == "ok"
    assert got["init_ms"] == pytest.approx(20.123)
    assert got["first_inference_ms"] == pytest.approx(905.463)
    assert got["warmup_avg_ms"] == pytest.approx(905.463) and got["warmup_runs"] == 1
    assert got["inference_avg_ms"] == pytest.approx(1000.98)
    assert got["inference_min_ms"] == pytest.approx(981.0) and got["inference_max_ms"] == pytest.approx(1061.21)
    assert got["inference_p5_ms"] == pytest.approx(983.333) and got["inference_p95_ms"] == pytest.approx(1043.05)
    assert got["inference_median_ms"] == pytest.approx(999.281)
    assert got["runs"] == 50
    assert got["peak_memory_mb"] == pytest.approx(113.25)  # periodic monitoring wins over the delta
    assert got["memory_overall_mb"] == pytest.approx(109.848) and got["memory_init_mb"] == pytest.approx(6.14844)
    assert (got["delegate"], got["delegation"], got["delegate_kernels"]) == ("xnnpack", "full", 1)
    assert got["delegate_nodes"][0]["nodes_delegated"] == 58


def test_tf1_lines_average_inference_timings_and_glog_prefixes():
    tf113 = """\
Initialized session in 4.452ms
Running benchmark for 1 iterations
count=1 curr=146161

Running benchmark for 50 iterations
count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896

Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
"""
    got = parse_benchmark_log(tf113)
    assert got["status"] == "ok"
    assert got["init_ms"] == pytest.approx(4.452)
    assert got["warmup_avg_ms"] == pytest.approx(146.161)
    assert got["first_inference_ms"] == pytest.approx(146.161)  # the single warmup run's time
    assert got["inference_avg_ms"] == pytest.approx(137.722) and got["inference_std_ms"] == pytest.approx(0.896)
    assert got["runs"] == 50

    got = parse_benchmark_log("I/tflite  ( 5395): Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1\n")
    assert (got["status"], got["init_ms"], got["warmup_avg_ms"], got["inference_avg_ms"]) == ("ok", 4.108, 91.471, 80.6601)
    assert got["first_inference_ms"] is None and got["runs"] is None

    glog = (
        "2017-11-27 08:56:45.691915: I tensorflow/tools/benchmark/benchmark_model.cc:324] "
        "count=61 first=143913 curr=150588 min=89136 max=256518 avg=165940 std=28180\n"
        "2017-11-27 08:56:45.692227: I tensorflow/tools/benchmark/benchmark_model.cc:538] "
        "Average inference timings in us: Warmup: 169371, no stats: 154047, with stats: 165939\n"
    )
    got = parse_benchmark_log(glog)
    assert got["status"] == "ok" and got["inference_avg_ms"] == pytest.approx(154.047) and got["init_ms"] is None
    assert got["warmup_avg_ms"] == pytest.approx(169.371)


def test_logcat_brief_format_with_exponent_summary():
    log = (
        "07-08 15:34:26.202 I/tflite  ( 5395): Initialized session in 458.883ms.\n"
        "07-08 15:34:26.202 I/tflite  ( 5395): Inference timings in us: Init: 458883, First inference: 2732148, "
        "Warmup (avg): 2.73215e+06, Inference (avg): 2.71985e+06\n"
        "07-08 15:34:26.202 I/tflite  ( 5395): Memory footprint delta from the start of the tool (MB): init=286.73 overall=337\n"
    )
    got = parse_benchmark_log(log)
    assert got["status"] == "ok"
    assert got["init_ms"] == pytest.approx(458.883) and got["first_inference_ms"] == pytest.approx(2732.148)
    assert got["warmup_avg_ms"] == pytest.approx(2732.15) and got["inference_avg_ms"] == pytest.approx(2719.85)
    assert got["peak_memory_mb"] == 337.0
    assert got["runs"] is None and got["inference_std_ms"] is None  # no count= line in this excerpt


def test_gpu_partial_delegation_lists_unsupported_ops():
    log = """\
INFO: Use gpu: [1]
INFO: Created TensorFlow Lite delegate for GPU.
ERROR: Following operations are not supported by GPU delegate:
CAST: Not supported Cast case. Input type: INT32 and output type: FLOAT32
CUSTOM TFLite_Detection_PostProcess: Operation is not supported.
TRANSPOSE_CONV: Max version supported: 3. Requested version 4.
130 operations will run on the GPU, and the remaining 114 operations will run on the CPU.
INFO: Replacing 130 out of 244 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions for the whole graph.
INFO: Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate w/ 2 delegate kernels.
INFO: Initialized session in 842.225ms.
INFO: count=13 first=115098 curr=36666 min=32079 max=115098 avg=40199.8 std=21694
INFO: count=1694 first=35688 curr=33419 min=30394 max=42335 avg=35134.9 std=1733
INFO: Inference timings in us: Init: 842225, First inference: 115098, Warmup (avg): 40199.8, Inference (avg): 35134.9
"""
    got = parse_benchmark_log(log)
    assert (got["delegate"], got["delegation"], got["delegate_kernels"]) == ("gpu", "partial", 2)
    assert got["unsupported_ops"] == [
        "CAST: Not supported Cast case. Input type: INT32 and output type: FLOAT32",
        "CUSTOM TFLite_Detection_PostProcess: Operation is not supported.",
        "TRANSPOSE_CONV: Max version supported: 3. Requested version 4.",
    ]
    assert got["unsupported_split"] == {"delegate_ops": 130, "cpu_ops": 114}
    assert got["errors"] == []  # the listing is not a failure
    assert got["runs"] == 1694 and got["warmup_runs"] == 13  # no phase markers: last two count= lines
    assert got["inference_std_ms"] == pytest.approx(1.733)


def test_delegate_that_was_not_executed_is_a_cpu_fallback():
    log = """\
INFO: Use NNAPI: [1]
INFO: NNAPI accelerators available: [nnapi-reference]
INFO: Created TensorFlow Lite delegate for NNAPI.
INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.
INFO: Initialized session in 30.1ms.
INFO: Inference timings in us: Init: 30100, First inference: 25000, Warmup (avg): 22000, Inference (avg): 21140.3
"""
    got = parse_benchmark_log(log)
    assert (got["delegate"], got["delegation"], got["delegate_kernels"]) == ("nnapi", "none", 0)
    assert got["fell_back_to_cpu"] is True
    assert got["inference_avg_ms"] == pytest.approx(21.1403)


def test_run_cut_mid_way_is_incomplete_with_what_was_measured():
    log = "\r\n".join([
        "STARTING!",
        "Num threads: [4]",
        "Loaded model /data/local/tmp/m.tflite",
        "Initialized session in 12.5ms.",
        "Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.",
        "count=3 first=140706 curr=74599 min=74599 max=140706 avg=85791.2 std=24559",
        "",
        "Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.",
    ]) + "\r\n"
    got = parse_benchmark_log(log)
    assert got["status"] == "incomplete"
    assert got["init_ms"] == 12.5
    assert got["first_inference_ms"] == pytest.approx(140.706) and got["warmup_avg_ms"] == pytest.approx(85.7912)
    assert got["inference_avg_ms"] is None and got["runs"] is None and got["inference_std_ms"] is None
    assert got["notes"]


def test_crash_output_is_failed():
    got = parse_benchmark_log("STARTING!\nGraph: [/data/local/tmp/m.tflite]\nSegmentation fault\n")
    assert got["status"] == "failed" and got["errors"] == ["Segmentation fault"]
    missing = parse_benchmark_log("/system/bin/sh: ./benchmark_model: not found\n")
    assert missing["status"] == "failed"


def test_empty_output_is_incomplete_and_says_so():
    got = parse_benchmark_log("")
    assert got["status"] == "incomplete" and got["errors"] == ["no benchmark_model output"]
    assert all(got[k] is None for k in ("init_ms", "inference_avg_ms", "runs", "peak_memory_mb"))


def test_cli_parse_json_prints_the_normalized_result(capsys):
    path = fixture("05-gpu-opencl-full-delegation-android-arm-tf2x.txt")
    assert main(["bench", "parse", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inference_avg_ms"] == pytest.approx(119.375) and data["delegation"] == "full"
    assert set(FIELDS) <= set(data)


def test_cli_parse_of_a_missing_log_is_one_line_exit_2(tmp_path, capsys):
    assert main(["bench", "parse", str(tmp_path / "nope.log")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oace bench: error: cannot read benchmark log") and "\n" not in err


def test_default_xnnpack_without_status_line_is_read_from_the_replacing_line():
    log = """\
I0000 00:00:1700000000.123456    1234 benchmark_tflite_model.cc:123] Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 510 out of 559 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 7 partitions for subgraph 0.
INFO: count=9 first=81913 curr=55502 min=55502 max=81913 avg=58984.7 std=8115
INFO: count=1061 first=56576 curr=56299 min=54669 max=60236 avg=56265.8 std=982
INFO: Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7, Inference (avg): 56265.8
"""
    got = parse_benchmark_log(log)
    assert (got["delegate"], got["delegation"], got["delegate_kernels"]) == ("xnnpack", "partial", 7)
    assert got["delegate_nodes"][0] == {"delegate": "xnnpack", "kernel": "TfLiteXNNPackDelegate",
                                        "nodes_delegated": 510, "nodes_total": 559, "partitions": 7}
    assert got["runs"] == 1061 and got["inference_avg_ms"] == pytest.approx(56.2658)


def test_requested_gpu_with_no_word_on_its_fate_is_left_unknown():
    log = "INFO: Use gpu: [1]\nINFO: Inference timings in us: Init: 1000, First inference: 2000, Warmup (avg): 1500, Inference (avg): 1400\n"
    got = parse_benchmark_log(log)
    assert (got["delegate"], got["delegation"], got["delegate_kernels"]) == ("gpu", None, None)
    assert got["fell_back_to_cpu"] is False and got["notes"]


def test_cli_parse_text_mode_warns_about_a_cpu_fallback(tmp_path, capsys):
    log = tmp_path / "nnapi.log"
    log.write_text(
        "INFO: Use NNAPI: [1]\n"
        "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.\n"
        "INFO: Inference timings in us: Init: 30100, First inference: 25000, Warmup (avg): 22000, Inference (avg): 21140.3\n"
    )
    assert main(["bench", "parse", str(log)]) == 0
    out = capsys.readouterr().out
    assert "inference_avg_ms     21.1403" in out
    assert "WARNING: the nnapi delegate did not run the model: these are CPU figures" in out
