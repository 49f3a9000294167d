"""Class 6 for `oace bench`: arguments that make no sense are refused before any work, by the CLI and
by the Python functions alike (android_bench/limits.py): thread counts 1..64, warmup 0..10000, runs
1..100000, repeats 1..100, cool-down 0..3600 s, timeout > 0, load / inference targets finite and
> 0, --preprocess-ms finite and >= 0, a profile JSON with finite positive targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oace.android_bench.host import HostBenchConfig, bench_host
from oace.android_bench.limits import MAX_THREADS
from oace.android_bench.profiles import get_profile
from oace.android_bench.runner import DeviceBenchConfig, bench_device
from tests.cli_contract import assert_refused, final_paths, run_oace
from fakes.tiny_tflite import build_tiny_bundle
from oace.errors import InputError

FAKE_BENCH = Path(__file__).resolve().parent / "fakes" / "benchmark_model"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


HOST = [
    (["--threads", "100000"], ["--threads", "100000", f"1..{MAX_THREADS}"]),
    (["--threads", "0"], ["--threads", "0"]),
    (["--threads", "2,-1"], ["--threads", "-1"]),
    (["--runs", "0"], ["--runs", "1..100000"]),
    (["--warmup", "-1"], ["--warmup", "0..10000"]),
    (["--target-inference-ms", "nan"], ["--target-inference-ms", "nan"]),
    (["--target-inference-ms", "inf"], ["--target-inference-ms", "inf"]),
    (["--target-load-ms", "-5"], ["--target-load-ms", "-5"]),
    (["--preprocess-ms", "-1"], ["--preprocess-ms", "-1"]),
]


@pytest.mark.parametrize("args,names", HOST, ids=[" ".join(a) for a, _ in HOST])
def test_host_refuses_senseless_arguments_at_once(tmp_path, model, args, names):
    out = tmp_path / "out"
    res = run_oace(["bench", "host", model, *args, "--out", out], timeout=120)
    assert_refused(res, *names, max_seconds=60)
    assert not out.exists() or final_paths(out) == []


DEVICE = [
    (["--cooldown", "-5"], ["--cooldown", "-5"]),
    (["--cooldown", "nan"], ["--cooldown", "nan"]),
    (["--timeout", "0"], ["--timeout", "0"]),
    (["--repeats", "0"], ["--repeats", "1..100"]),
    (["--threads", "100000"], ["--threads", f"1..{MAX_THREADS}"]),
    (["--target-inference-ms", "-250"], ["--target-inference-ms", "-250"]),
]


@pytest.mark.parametrize("args,names", DEVICE, ids=[" ".join(a) for a in (d[0] for d in DEVICE)])
def test_device_refuses_senseless_arguments_before_touching_adb(tmp_path, model, args, names):
    out = tmp_path / "out"
    env = {"PATH": str(tmp_path)}  # no adb anywhere: a refusal must come before adb is looked for
    res = run_oace(["bench", "device", model, "--serial", "auto", "--benchmark-binary", FAKE_BENCH, *args,
                                     "--out", out], timeout=120, env=env)
    assert_refused(res, *names, max_seconds=60)
    assert not out.exists() or final_paths(out) == []


def test_the_python_functions_refuse_what_the_cli_refuses(tmp_path, model):
    with pytest.raises(InputError, match=r"--threads 100000 is out of range: give thread counts in 1\.\.64"):
        bench_host(model, HostBenchConfig(threads=(100000,), out=tmp_path / "h", progress=False))
    with pytest.raises(InputError, match=r"--threads True"):
        bench_host(model, HostBenchConfig(threads=(True,), out=tmp_path / "h", progress=False))
    with pytest.raises(InputError, match=r"--target-inference-ms nan"):
        bench_host(model, HostBenchConfig(target_inference_ms=float("nan"), out=tmp_path / "h", progress=False))
    with pytest.raises(InputError, match=r"--cooldown -5 is not a finite number >= 0"):
        bench_device(model, DeviceBenchConfig(benchmark_binary=FAKE_BENCH, cooldown=-5, out=tmp_path / "d", progress=False))
    with pytest.raises(InputError, match=r"--runs 0 is out of range"):
        bench_device(model, DeviceBenchConfig(benchmark_binary=FAKE_BENCH, runs=0, out=tmp_path / "d", progress=False))
    assert not (tmp_path / "h").exists() and not (tmp_path / "d").exists()


def test_a_profile_file_with_a_nan_or_negative_target_is_refused_naming_it(tmp_path, model):
    prof = tmp_path / "phone.json"
    prof.write_text('{"name": "x", "load_ms": NaN, "inference_ms": 250}')
    with pytest.raises(InputError, match=f"device profile {prof}: load_ms and inference_ms must be finite"):
        get_profile(str(prof))
    prof.write_text(json.dumps({"name": "x", "load_ms": 25, "inference_ms": -1}))
    res = run_oace(["bench", "host", model, "--profile", prof, "--out", tmp_path / "o"], timeout=120)
    assert_refused(res, str(prof), "finite numbers > 0")
