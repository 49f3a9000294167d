"""benchmarks/bench_export.py: the issue's speed targets judged against this CPU's measured floor."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_export", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_export.py")
bench_export = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_export)

GMACS = 38.66


def figures(int8_ms, torch_ms, ort_ms, floor_int8, floor_fp32, threads=2):
    rows = {"tflite int8": int8_ms / GMACS, "conv floor int8": floor_int8, "conv floor fp32": floor_fp32}
    by = {(name, threads): {"ms_per_gmac": v, "p50_ms": v * GMACS} for name, v in rows.items()}
    by[("torch fp32", threads)] = {"p50_ms": torch_ms}
    by[("onnxruntime fp32", threads)] = {"p50_ms": ort_ms}
    return by


def test_the_reference_host_figures_meet_two_targets_and_miss_one():
    """The README's figures of the host the targets were set on: 115 ms int8, 512 torch, 399 ORT."""
    out = bench_export.judge(figures(115, 512, 399, floor_int8=2.6, floor_fp32=10.0), 2, GMACS)
    assert out["over_floor"] == pytest.approx(2.975 / 2.6, abs=1e-3)
    assert out["torch fp32"]["met"] is False and out["torch fp32"]["speedup"] == pytest.approx(4.45, abs=0.01)
    assert out["torch fp32"]["reachable_on_this_cpu"] is True  # 512 / (2.6 * 38.66) = 5.09
    assert out["onnxruntime fp32"]["met"] is True
    assert "missed" not in out["lines"][0] and "OUT OF REACH" not in "".join(out["lines"])
    assert out["lines"][-1] == "this CPU's int8 convolutions run 3.85x as fast as its fp32 ones"


def test_an_avx2_host_says_which_targets_no_bundle_could_meet():
    """Figures measured on an AVX2-only AMD EPYC: int8 kernels no faster than fp32."""
    out = bench_export.judge(figures(547, 853, 664, floor_int8=13.4, floor_fp32=14.0), 2, GMACS)
    assert out["over_floor"] == pytest.approx(547 / GMACS / 13.4)
    assert "met (target within 15%)" in out["lines"][0]
    for name in ("torch fp32", "onnxruntime fp32"):
        assert out[name]["met"] is False and out[name]["reachable_on_this_cpu"] is False
    assert "OUT OF REACH ON THIS CPU: at its int8 conv floor the bundle would be 1.65x" in out["lines"][1]


def test_nothing_to_judge_without_the_int8_bundle_or_the_floor():
    by = figures(115, 512, 399, 2.6, 10.0)
    del by[("conv floor int8", 2)]
    assert bench_export.judge(by, 2, GMACS) == {"lines": []}
    assert bench_export.judge(figures(115, 512, 399, 2.6, 10.0), 1, GMACS) == {"lines": []}
