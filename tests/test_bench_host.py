"""`oace bench host`: the LiteRT interpreter on this computer, on real .tflite files, labelled as host."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oace.android_bench.profiles import get_profile, verdict
from oace.android_bench.common import describe_model
from oace.android_bench.host import HostBenchConfig, bench_host, random_inputs
from fakes.tiny_tflite import build_tiny_bundle
from oace.cli import main
from oace.errors import InputError

MOBILENET = (Path(__file__).resolve().parents[1].parent / "shared" / "weights"
             / "mobilenet_v2_1.0_224_quant_tflite" / "mobilenet_v2_1.0_224_quant.tflite")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny_host"))


def test_host_bench_on_a_bundle_shaped_model_writes_labelled_reports(tiny_model, tmp_path):
    out = tmp_path / "bench"
    rep = bench_host(tiny_model, HostBenchConfig(threads=(1, 2), warmup=2, runs=7, out=out, progress=False))
    assert rep["status"] == "ok" and rep["mode"] == "host" and rep["label"].startswith("HOST figures")
    assert rep["model"]["preprocessing_in_graph"] is True
    assert {i["name"] for i in rep["model"]["inputs"]} == {
        "serving_default_image:0", "serving_default_clicks:0", "serving_default_prev_mask:0"}
    assert [c["threads"] for c in rep["configurations"]] == [1, 2]
    for c in rep["configurations"]:
        r = c["repeats"][0]
        assert r["runs"] == 7 and len(r["samples_ms"]) == 7 and r["warmup_runs"] == 2
        assert r["addressing"] == "signature runner 'serving_default'"
        s = np.asarray(r["samples_ms"])
        assert r["inference_avg_ms"] == pytest.approx(s.mean(), abs=1e-3)
        assert r["inference_median_ms"] == pytest.approx(np.percentile(s, 50), abs=1e-3)
        assert r["inference_p90_ms"] == pytest.approx(np.percentile(s, 90), abs=1e-3)
        assert r["init_ms"] == pytest.approx(r["read_ms"] + r["build_ms"] + r["allocate_ms"], abs=1e-3)
        assert c["verdict"]["scope"].startswith("host check only")
        assert c["aggregate"]["inference_median_ms"] == r["inference_median_ms"]
    data = json.loads((out / "bench.json").read_text())
    assert data["provenance"]["versions"]["ai-edge-litert"] == "2.1.0"
    assert data["host"]["cores"] >= 1
    md = (out / "bench.md").read_text()
    assert "HOST figures" in md and "not phone figures" in md and "host: " in md
    assert "DEVICE" not in md
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"


def test_host_bench_on_real_mobilenet_v2_int8(tmp_path):
    if not MOBILENET.is_file():
        pytest.skip(f"{MOBILENET} is absent")
    rep = bench_host(MOBILENET, HostBenchConfig(threads=(1,), warmup=2, runs=5, out=tmp_path, progress=False))
    info = rep["model"]
    assert info["bytes"] == 3610798 and info["inputs"] == [{"name": "input", "dtype": "uint8", "shape": [1, 224, 224, 3]}]
    r = rep["configurations"][0]["repeats"][0]
    assert r["addressing"] == "input/output details (no signature)" and r["runs"] == 5
    assert r["inference_min_ms"] <= r["inference_avg_ms"] <= r["inference_max_ms"]


def test_random_inputs_are_seeded_and_click_rows_valid():
    details = {"image": {"shape": [1, 8, 8, 3], "dtype": np.uint8},
               "clicks": {"shape": [1, 24, 3], "dtype": np.int32},
               "prev_mask": {"shape": [1, 8, 8, 1], "dtype": np.float32}}
    a, b = random_inputs(details, 3), random_inputs(details, 3)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == np.dtype(details[k]["dtype"]) for k in details)
    clicks = a["clicks"][0]
    assert clicks[0, 2] == 1 and (clicks[1:, 2] == -1).all() and (clicks[1:, :2] == 0).all()
    assert 0 <= clicks[0, 0] < 256 and 0 <= clicks[0, 1] < 256


def test_not_a_tflite_is_a_clear_input_error(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(InputError, match=rf"model {bad} is not a .tflite flatbuffer"):
        describe_model(bad)
    with pytest.raises(InputError, match="does not exist"):
        describe_model(tmp_path / "missing.tflite")


def test_verdict_counts_out_of_graph_preprocessing_and_flags_fallback():
    prof = get_profile("default")
    v = verdict(20.0, 240.0, prof, preprocessing_in_graph=False, preprocess_ms=15.0)
    assert v["result"] == "FAIL" and v["inference_ms"] == 255.0 and "inference 255.0 ms > 250 ms" in v["reasons"]
    v = verdict(20.0, 240.0, prof, preprocessing_in_graph=False)
    assert v["result"] == "PASS" and "NOT counted" in v["warnings"][0]
    v = verdict(26.0, 100.0, prof, preprocessing_in_graph=True, delegate="gpu", delegation="none")
    assert v["result"] == "FAIL" and v["warnings"][0].startswith("DELEGATE FELL BACK TO CPU: gpu")
    assert verdict(None, 100.0, prof, preprocessing_in_graph=True)["result"] == "NO DATA"
    assert get_profile(None, "SM-S918B").name == "Galaxy S23" and get_profile(None, "Pixel 6").name == "default"
    with pytest.raises(InputError, match="unknown device profile 'Galaxy S99'"):
        get_profile("Galaxy S99")


def test_cli_host_mirror(tiny_model, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["bench", "host", str(tiny_model), "--threads", "1", "--warmup", "1", "--runs", "3",
                 "--out", str(out), "--target-load-ms", "1000"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("HOST figures") and "host-cpu-1t" in text
    rep = json.loads((out / "bench.json").read_text())
    assert rep["settings"]["runs"] == 3 and rep["profile"]["load_ms"] == 1000.0
    assert main(["bench", "host", str(tiny_model), "--threads", "one"]) == 2
    assert "--threads must be comma-separated integers" in capsys.readouterr().err


def test_host_bench_falls_back_to_tflite_runtime(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("tflite_runtime.interpreter")
    import sys

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now raises ImportError
    rep = bench_host(tiny_model, HostBenchConfig(threads=(1,), warmup=1, runs=2, out=tmp_path, progress=False))
    r = rep["configurations"][0]["repeats"][0]
    assert r["runtime"] == "tflite-runtime" and r["runs"] == 2
    assert "tflite-runtime" in (tmp_path / "bench.md").read_text()


def test_host_report_gives_ms_per_gmac_and_the_cpu(tiny_model, tmp_path, monkeypatch):
    from oace.android_bench import host, host_cpu

    facts = {**host_cpu.cpu_facts(), "int8_dot_product": False, "int8_dot_product_isa": []}
    monkeypatch.setattr(host, "cpu_facts", lambda: facts)
    rep = bench_host(tiny_model, HostBenchConfig(threads=(1,), warmup=1, runs=3, out=tmp_path, progress=False))
    macs = rep["model"]["macs"]
    assert macs["by_op"] == {"CONV_2D": 32 * 32 * 4 * (3 * 3 * 5)} and macs["precision"] == "float32"
    c = rep["configurations"][0]
    assert c["ms_per_gmac"] == pytest.approx(c["aggregate"]["inference_avg_ms"] / macs["gmacs"], rel=1e-3)
    assert rep["host"]["int8_dot_product"] in (True, False, None) and "vector_isa" in rep["host"]
    md = (tmp_path / "bench.md").read_text()
    assert "Host vector ISA:" in md and "| ms/GMAC |" in md and "0.00 GMACs per call" in md
    assert "convolution floor" not in md  # only measured when asked
    # a float model's host figures do not mislead about int8: no warning even on a CPU without dot products
    assert rep["host"]["int8_note"] is None and "NO INT8 DOT-PRODUCT" not in md
    assert "int8 dot-product instructions: none" in md


def test_kernel_floor_section_and_the_loud_int8_note(tmp_path, monkeypatch, capsys):
    """An int8 model on a CPU without int8 dot products: the report says so and reads it against the floor."""
    from oace.android_bench import host, host_cpu, kernel_floor

    probe = kernel_floor.build_probe(tmp_path / "model", ((32, 16, 2),))
    real_build = kernel_floor.build_probe
    monkeypatch.setattr(kernel_floor, "build_probe", lambda out: real_build(out, ((32, 16, 2),)))
    facts = {**host_cpu.cpu_facts(), "cpu": "AMD EPYC", "int8_dot_product": False, "int8_dot_product_isa": []}
    monkeypatch.setattr(host, "cpu_facts", lambda: facts)
    out = tmp_path / "cli"
    assert main(["bench", "host", str(probe.int8), "--threads", "1", "--warmup", "1", "--runs", "3",
                 "--kernel-floor", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "this CPU's conv floor at 1 thread(s): int8" in text and "WARNING: THIS CPU HAS NO INT8 DOT-PRODUCT" in text
    rep = json.loads((out / "bench.json").read_text())
    floor = rep["kernel_floor"]["threads"]["1"]
    assert rep["kernel_floor"]["layers"] == [[32, 16, 2]] and floor["int8_ms_per_gmac"] > 0
    md = (out / "bench.md").read_text()
    assert "## This CPU's convolution floor" in md and "THIS CPU HAS NO INT8 DOT-PRODUCT INSTRUCTIONS (AMD EPYC" in md
    row = next(line for line in md.splitlines() if line.startswith("| 1 | "))
    own, ratio = row.split(" | ")[4], row.split(" | ")[5].rstrip(" |")
    assert float(ratio.rstrip("x")) == pytest.approx(float(own) / floor["int8_ms_per_gmac"], abs=0.01)


def test_kernel_floor_is_a_host_option(tiny_model, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "device", str(tiny_model), "--benchmark-binary", "bm", "--kernel-floor"])
    assert exc.value.code == 2 and "unrecognized arguments: --kernel-floor" in capsys.readouterr().err


def two_signature_bundle(path: Path, size: int = 16) -> Path:
    """A bundle-shaped file with two signatures: `a_preview` (listed first) and `segment`."""
    import tensorflow as tf

    specs = [tf.TensorSpec([1, size, size, 3], tf.uint8, name="image"), tf.TensorSpec([1, 24, 3], tf.int32, name="clicks"),
             tf.TensorSpec([1, size, size, 1], tf.float32, name="prev_mask")]

    class Two(tf.Module):
        @tf.function(input_signature=specs)
        def preview(self, image, clicks, prev_mask):
            return {"mask": prev_mask * 0.0}

        @tf.function(input_signature=specs)
        def segment(self, image, clicks, prev_mask):
            return {"mask": tf.cast(image[..., :1], tf.float32) / 255.0 + prev_mask}

    two = Two()
    saved = path.parent / "two_savedmodel"
    tf.saved_model.save(two, str(saved), signatures={"a_preview": two.preview.get_concrete_function(),
                                                     "segment": two.segment.get_concrete_function()})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["a_preview", "segment"])
    path.write_bytes(conv.convert())
    return path


def test_host_bench_runs_the_signature_every_stage_resolves(tmp_path):
    """With several signatures the host bench times `segment`, the one SegmentRunner (and so eval, the
    Predictor and the export's parity runs) runs, not the first one listed."""
    pytest.importorskip("tensorflow")
    from oace.litert import SegmentRunner

    model = two_signature_bundle(tmp_path / "two.tflite")
    runner = SegmentRunner(model, num_threads=1)
    assert list(runner.interpreter.get_signature_list())[0] == "a_preview" and runner.signature == "segment"
    assert (runner.input_size, runner.max_clicks) == (16, 24)
    rep = bench_host(model, HostBenchConfig(threads=(1,), warmup=1, runs=2, out=tmp_path / "bench", progress=False))
    assert rep["configurations"][0]["repeats"][0]["addressing"] == "signature runner 'segment'"
