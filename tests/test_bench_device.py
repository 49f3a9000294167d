"""`oace bench device`: the whole orchestration against the fake adb (a directory as the phone's
storage, a getprop table, scripted failures) and the fake benchmark_model, asserting the exact adb
command lines and the figures that end up in bench.json / bench.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oace.android_bench.runner import BenchAborted, DeviceBenchConfig, bench_device
from fakes.tiny_tflite import build_tiny_bundle
from oace.cli import main
from fakes.adb_double import calls, install_fake_adb, s23

FAKE_BENCH = Path(__file__).resolve().parent / "fakes" / "benchmark_model"
SERIAL = "R5CW12345"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def model(tiny_model, tmp_path) -> Path:
    p = tmp_path / "oace_segmenter_int8.tflite"
    p.write_bytes(tiny_model.read_bytes())
    return p


def run(model, out, **kw):
    kw.setdefault("benchmark_binary", FAKE_BENCH)
    kw.setdefault("cooldown", 0)
    kw.setdefault("progress", False)
    kw.setdefault("runs", 20)
    kw.setdefault("warmup", 2)
    return bench_device(model, DeviceBenchConfig(out=out, **kw))


def shell_cmds(home):
    return [c[3] for c in calls(home) if c[2:3] == ["shell"]]


def test_device_bench_runs_each_config_and_records_exact_commands(tmp_path, monkeypatch, model):
    home = install_fake_adb(tmp_path, monkeypatch, [s23()])
    out = tmp_path / "out"
    rep = run(model, out, serial="auto", threads="1,4", delegates="cpu", repeats=2, cpu_mask="big")

    assert rep["status"] == "ok" and rep["mode"] == "device"
    assert rep["device"]["model"] == "SM-S911B" and rep["profile"]["name"] == "Galaxy S23"
    assert rep["settings"]["cpu_mask"] == "f8"  # prime + performance cores, read from cpuinfo_max_freq
    cfgs = {c["name"]: c for c in rep["configurations"]}
    assert list(cfgs) == ["cpu-1t", "cpu-4t"]
    # fake benchmark_model: avg = 120000/threads us, init 12500 us
    assert cfgs["cpu-1t"]["aggregate"]["inference_avg_ms"] == pytest.approx(120.0)
    assert cfgs["cpu-4t"]["aggregate"]["inference_avg_ms"] == pytest.approx(30.0)
    assert cfgs["cpu-4t"]["aggregate"]["init_ms"] == pytest.approx(12.5)
    # the tiny bundle's one conv: 32x32x4 outputs x 3x3x5 -> 184,320 MACs; 30 ms / 0.000184 GMAC
    assert rep["model"]["macs"]["total"] == 184_320
    assert cfgs["cpu-4t"]["ms_per_gmac"] == pytest.approx(30.0 / 184_320e-9, rel=1e-4)
    assert cfgs["cpu-4t"]["repeats"][0]["runs"] == 20 and cfgs["cpu-4t"]["repeats"][0]["peak_memory_mb"] == 25.75
    assert cfgs["cpu-4t"]["verdict"]["result"] == "PASS"
    assert "preprocessing is in the graph" in " ".join(cfgs["cpu-4t"]["verdict"]["reasons"])
    assert rep["thermal"]["before"]["battery_c"] == 31.2 and rep["thermal"]["after"]["thermal_max_c"] == 41.5

    log = calls(home)
    assert log[0] == ["devices", "-l"]
    pushes = [c for c in log if c[2:3] == ["push"]]
    assert pushes == [
        ["-s", SERIAL, "push", str(model), "/data/local/tmp/oace_segmenter_int8.tflite"],
        ["-s", SERIAL, "push", str(FAKE_BENCH), "/data/local/tmp/benchmark_model"],
    ]
    bench = [c for c in shell_cmds(home) if "--graph" in c]
    assert bench == [
        "cd /data/local/tmp && taskset f8 /data/local/tmp/benchmark_model "
        "--graph=/data/local/tmp/oace_segmenter_int8.tflite --num_threads=1 --use_xnnpack=true --warmup_runs=2 "
        "--warmup_min_secs=0 --num_runs=20 --min_secs=0 2>&1",
    ] * 2 + [
        "cd /data/local/tmp && taskset f8 /data/local/tmp/benchmark_model "
        "--graph=/data/local/tmp/oace_segmenter_int8.tflite --num_threads=4 --use_xnnpack=true --warmup_runs=2 "
        "--warmup_min_secs=0 --num_runs=20 --min_secs=0 2>&1",
    ] * 2
    assert "chmod 755 /data/local/tmp/benchmark_model" in shell_cmds(home)

    data = json.loads((out / "bench.json").read_text())
    assert data["configurations"][1]["repeats"][1]["inference_avg_ms"] == pytest.approx(30.0)
    assert data["tools"]["adb_version"].startswith("Android Debug Bridge version 1.0.41")
    raw = Path(data["configurations"][0]["repeats"][0]["raw_log"])
    assert raw.parent == out / "raw" and "Inference (avg): 120000" in raw.read_text()
    md = (out / "bench.md").read_text()
    assert "DEVICE figures" in md and "| cpu-4t | 4 |" in md and "PASS" in md
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"

    # second run: model and binary already on the phone with the same hash -> no push
    before = len(calls(home))
    run(model, tmp_path / "out2", serial=SERIAL, threads="4", repeats=1)
    assert not [c for c in calls(home)[before:] if c[2:3] == ["push"]]


def test_paths_with_spaces_are_quoted_in_adb_shell(tmp_path, monkeypatch, model):
    home = install_fake_adb(tmp_path, monkeypatch, [s23()])
    spaced = tmp_path / "my bundle.tflite"
    spaced.write_bytes(model.read_bytes())
    rep = run(spaced, tmp_path / "out", threads="2", repeats=1, remote_dir="/data/local/tmp/oace runs")
    assert rep["profile"]["cpu_mask"] == "big"  # the Galaxy S23 profile pins to the big cores
    assert rep["status"] == "ok"
    bench = [c for c in shell_cmds(home) if "--graph" in c]
    assert bench == [
        "cd '/data/local/tmp/oace runs' && taskset f8 '/data/local/tmp/oace runs/benchmark_model' "
        "'--graph=/data/local/tmp/oace runs/my bundle.tflite' --num_threads=2 --use_xnnpack=true "
        "--warmup_runs=2 --warmup_min_secs=0 --num_runs=20 --min_secs=0 2>&1"
    ]
    assert rep["configurations"][0]["aggregate"]["inference_avg_ms"] == pytest.approx(60.0)


def test_gpu_is_measured_and_nnapi_cpu_fallback_is_flagged_loudly(tmp_path, monkeypatch, model):
    install_fake_adb(tmp_path, monkeypatch, [s23()])
    out = tmp_path / "out"
    rep = run(model, out, threads="4", delegates="gpu,nnapi", repeats=1)
    cfgs = {c["name"]: c for c in rep["configurations"]}
    gpu = cfgs["gpu-4t"]
    assert gpu["repeats"][0]["delegation"] == "full" and gpu["aggregate"]["inference_avg_ms"] == pytest.approx(40.0)
    assert gpu["aggregate"]["init_ms"] == pytest.approx(180.5)
    assert gpu["verdict"]["result"] == "FAIL" and gpu["verdict"]["reasons"][-1] == "load 180.5 ms > 25 ms"
    nn = cfgs["nnapi-4t"]
    assert nn["repeats"][0]["fell_back_to_cpu"] is True
    assert any(w.startswith("DELEGATE FELL BACK TO CPU: nnapi") for w in nn["verdict"]["warnings"])
    assert "**nnapi-4t: DELEGATE FELL BACK TO CPU" in (out / "bench.md").read_text()


def test_disconnect_mid_run_keeps_what_was_measured(tmp_path, monkeypatch, model):
    dev = s23(fail={"disconnect_on": "--num_threads=4", "disconnect_after_lines": 12})
    install_fake_adb(tmp_path, monkeypatch, [dev])
    out = tmp_path / "out"
    with pytest.raises(BenchAborted, match=rf"device {SERIAL} stopped answering \(error: closed\).*cpu-4t, repeat 1"
                       rf".*saved in {out / 'bench.json'}"):
        run(model, out, threads="1,4", repeats=1)
    data = json.loads((out / "bench.json").read_text())
    assert data["status"] == "incomplete" and "stopped answering" in data["error"]
    first, second = data["configurations"]
    assert first["repeats"][0]["status"] == "ok" and first["aggregate"]["inference_avg_ms"] == pytest.approx(120.0)
    assert second["repeats"][0]["status"] == "incomplete" and second["repeats"][0]["inference_avg_ms"] is None
    assert "INFO: STARTING!" in Path(second["repeats"][0]["raw_log"]).read_text()
    assert (out / "bench.md").exists() and (out / "latency.png").exists()


def test_timeout_is_reported_and_partial_output_saved(tmp_path, monkeypatch, model):
    install_fake_adb(tmp_path, monkeypatch, [s23(fail={"hang_on": "--graph"})])
    out = tmp_path / "out"
    with pytest.raises(BenchAborted, match=r"benchmark_model timed out after 1 s on R5CW12345 \(cpu-4t, repeat 1\)"):
        run(model, out, threads="4", repeats=1, timeout=1)
    data = json.loads((out / "bench.json").read_text())
    assert data["status"] == "failed"
    assert Path(data["configurations"][0]["repeats"][0]["raw_log"]).read_text() == "INFO: STARTING!\n"


def test_benchmark_crash_stops_with_the_reason(tmp_path, monkeypatch, model):
    install_fake_adb(tmp_path, monkeypatch, [s23()])
    monkeypatch.setenv("FAKE_BENCH_CRASH", "1")
    out = tmp_path / "out"
    with pytest.raises(BenchAborted, match=r"benchmark_model crashed on R5CW12345 \(cpu-4t, repeat 1, exit 139\): "
                                           r"Segmentation fault"):
        run(model, out, threads="4", repeats=2)
    rep = json.loads((out / "bench.json").read_text())
    assert rep["configurations"][0]["repeats"][0]["warmup_avg_ms"] == pytest.approx(31.0)


def test_unauthorized_device_fails_before_anything_is_pushed(tmp_path, monkeypatch, model):
    home = install_fake_adb(tmp_path, monkeypatch, [{"serial": "X1", "state": "unauthorized"}])
    with pytest.raises(Exception, match="device X1 is unauthorized"):
        run(model, tmp_path / "out", threads="4", repeats=1)
    assert calls(home) == [["devices", "-l"]]


def test_cli_device_mirror_and_one_line_errors(tmp_path, monkeypatch, model, capsys):
    install_fake_adb(tmp_path, monkeypatch, [s23()])
    out = tmp_path / "out"
    rc = main(["bench", "device", str(model), "--benchmark-binary", str(FAKE_BENCH), "--threads", "2",
               "--repeats", "1", "--cooldown", "0", "--runs", "10", "--out", str(out), "--profile", "default",
               "--target-inference-ms", "50"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "DEVICE figures" in text and "cpu-2t" in text and "FAIL" in text  # 60 ms > 50 ms
    rep = json.loads((out / "bench.json").read_text())
    assert rep["profile"]["inference_ms"] == 50.0 and rep["settings"]["runs"] == 10

    assert main(["bench", "device", str(model)]) == 2
    assert "`oace bench device` needs --benchmark-binary PATH" in capsys.readouterr().err

    (tmp_path / "two").mkdir()
    install_fake_adb(tmp_path / "two", monkeypatch, [s23("AAA"), s23("BBB")])
    assert main(["bench", "device", str(model), "--serial", "auto", "--benchmark-binary", str(FAKE_BENCH)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oace bench: error: several devices are connected") and err.count("\n") == 1


def test_failed_delegate_does_not_stop_other_configs_and_is_reported(tmp_path, monkeypatch, model):
    install_fake_adb(tmp_path, monkeypatch, [s23()])
    monkeypatch.setenv("FAKE_BENCH_GPU_FAIL", "1")
    out = tmp_path / "out"
    with pytest.raises(BenchAborted, match=r"benchmark_model did not finish every run: gpu-4t r1: failed "
                                           r"\(Benchmarking failed.\)"):
        run(model, out, threads="4", delegates="gpu,cpu", repeats=1)
    rep = json.loads((out / "bench.json").read_text())
    assert rep["status"] == "incomplete"
    gpu, cpu = rep["configurations"]
    assert gpu["repeats"][0]["delegation"] == "failed" and gpu["repeats"][0]["exit_code"] == 1
    assert gpu["repeats"][0]["unsupported_ops"] == ["CAST: Not supported Cast case. Input type: INT32 and output type: FLOAT32"]
    assert gpu["verdict"]["result"] == "NO DATA"
    assert cpu["aggregate"]["inference_avg_ms"] == pytest.approx(30.0) and cpu["verdict"]["result"] == "PASS"
