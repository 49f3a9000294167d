"""`oace bench host | device | parse`: each subcommand offers only its own options, takes its defaults
from the config records (android_bench/config.py), and a missing subcommand is one line, exit 2."""

from __future__ import annotations

import pytest

from oace.android_bench import host, runner
from oace.android_bench.config import DeviceBenchConfig, HostBenchConfig
from oace.cli import build_parser, main

REPORT = {"label": "HOST figures", "configurations": [], "files": {"md": "bench.md"}}


def test_bench_without_a_subcommand_is_one_line_and_exit_2(capsys):
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oace bench: error: give a subcommand: `oace bench host MODEL.tflite`")
    assert err.count("\n") == 1


FOREIGN = [
    ("host", ["--benchmark-binary", "bm"]), ("host", ["--serial", "X"]), ("host", ["--delegates", "gpu"]),
    ("host", ["--repeats", "2"]), ("host", ["--cooldown", "0"]), ("host", ["--cpu-mask", "f0"]),
    ("host", ["--timeout", "9"]), ("host", ["--remote-dir", "/x"]), ("host", ["--extra-arg=--a=1"]),
    ("host", ["--adb", "adb"]), ("host", ["--json"]), ("host", ["--device"]), ("device", ["--kernel-floor"]),
    ("device", ["--seed", "1"]), ("device", ["--json"]), ("device", ["--host"]), ("parse", ["--out", "o"]),
    ("parse", ["--threads", "1"]), ("parse", ["--runs", "3"]),
]


@pytest.mark.parametrize("mode,flag", FOREIGN, ids=[f"{m} {' '.join(f)}" for m, f in FOREIGN])
def test_a_subcommand_refuses_the_options_of_another(mode, flag, capsys):
    args = ["bench", mode, "m.tflite", *flag] + (["--benchmark-binary", "bm"] if mode == "device" else [])
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(args)
    assert exc.value.code == 2 and f"unrecognized arguments: {flag[0]}" in capsys.readouterr().err


def test_host_takes_the_defaults_of_host_bench_config(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(host, "bench_host", lambda model, config, argv: seen.append((model, config)) or REPORT)
    assert main(["bench", "host", "m.tflite", "--out", str(tmp_path)]) == 0
    assert seen == [("m.tflite", HostBenchConfig(out=str(tmp_path)))]
    assert main(["bench", "host", "m.tflite", "--out", str(tmp_path), "--threads", "1,4", "--seed", "3",
                 "--kernel-floor"]) == 0
    assert seen[-1][1] == HostBenchConfig(out=str(tmp_path), threads=(1, 4), seed=3, kernel_floor=True)


def test_device_takes_the_defaults_of_device_bench_config_and_serial_names_the_phone(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "bench_device", lambda model, config, argv: seen.append(config) or REPORT)
    assert main(["bench", "device", "m.tflite", "--benchmark-binary", "bm", "--out", str(tmp_path)]) == 0
    assert seen == [DeviceBenchConfig(benchmark_binary="bm", out=str(tmp_path))]
    assert main(["bench", "device", "m.tflite", "--benchmark-binary", "bm", "--out", str(tmp_path), "--serial",
                 "R5CW12345", "--threads", "2", "--extra-arg=--use_gpu=true", "--delegates", "gpu"]) == 0
    assert seen[-1] == DeviceBenchConfig(benchmark_binary="bm", out=str(tmp_path), serial="R5CW12345", threads=(2,),
                                         extra_args=["--use_gpu=true"], delegates="gpu")


def test_device_without_a_benchmark_binary_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["bench", "device", "m.tflite", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oace bench: error: `oace bench device` needs --benchmark-binary PATH")
    assert err.count("\n") == 1
