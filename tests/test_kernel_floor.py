"""android_bench.kernel_floor: this CPU's int8 / fp32 convolution floor, from a probe built on the spot."""

from __future__ import annotations

import pytest

from oace.android_bench.kernel_floor import PROBE_LAYERS, build_probe, measure_floor, probe_gmacs
from oace.tflite.inspection import inspect_tflite, tflite_macs

SMALL = ((32, 8, 2), (16, 16, 1))


@pytest.fixture(scope="module")
def small_probe(tmp_path_factory):
    return build_probe(tmp_path_factory.mktemp("probe"), SMALL)


def test_probe_gmacs_follow_hrnet_w18_widths():
    # every HRNet branch conv has the same MACs (128^2*18^2*9 = 47.8M); the two 64-channel ones 604M
    assert probe_gmacs(PROBE_LAYERS) == pytest.approx((16 * 128 * 128 * 18 * 18 * 9 + 2 * 128 * 128 * 64 * 64 * 9) / 1e9)
    assert probe_gmacs(SMALL) == pytest.approx((2 * 32 * 32 * 64 * 9 + 16 * 16 * 256 * 9) / 1e9)


def test_probe_files_hold_only_convolutions_in_their_precision(small_probe):
    assert small_probe.layers == SMALL
    for path, dtype in ((small_probe.fp32, "float32"), (small_probe.int8, "int8")):
        macs = tflite_macs(path)
        assert macs.total == pytest.approx(small_probe.gmacs * 1e9) and macs.by_dtype == {dtype: macs.total}
        ops = inspect_tflite(path).op_counts
        assert ops["CONV_2D"] == 3 and set(ops) <= {"CONV_2D", "QUANTIZE", "DEQUANTIZE"}  # ReLU fused, nothing else


def test_the_probe_is_rebuilt_byte_for_byte(small_probe, tmp_path):
    again = build_probe(tmp_path, SMALL)
    assert again.fp32.read_bytes() == small_probe.fp32.read_bytes()
    assert again.int8.read_bytes() == small_probe.int8.read_bytes()


def test_floor_figures_per_thread_count(small_probe):
    floor = measure_floor(small_probe, threads=(1, 2), rounds=1, runs=3)
    assert floor["gmacs"] == small_probe.gmacs and floor["layers"] == [list(layer) for layer in SMALL]
    assert set(floor["threads"]) == {"1", "2"}
    for f in floor["threads"].values():
        assert 0 < f["int8_ms_per_gmac"] < 1e4 and 0 < f["fp32_ms_per_gmac"] < 1e4
        assert f["int8_speedup_over_fp32"] == pytest.approx(f["fp32_ms_per_gmac"] / f["int8_ms_per_gmac"])
