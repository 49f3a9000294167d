"""The export pipeline (oace/pipeline.py): torch -> ONNX -> onnx2tf -> TFLite fp32/fp16 (export) ->
int8/dynamic_range (quantize) -> verified, reported.

The tiny segmenter (same graph, tiny widths) runs the real pipeline once per module (about a
minute); the full-size segmenter runs end to end in the slow test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oace.artifacts import sha256_file
from oace.errors import ToolkitError
from oace.litert import SegmentRunner
from oace.model.registry import build_model, save_checkpoint
from oace.pipeline import ExportOptions, export_bundle
from oace.quantize.calibration import representative_dataset
from oace.quantize.int8 import quantize
from oace.tflite.inspection import TFLiteContents, inspect_tflite, require_no_flex, tflite_macs

pytestmark = pytest.mark.slow  # TensorFlow conversions / training loops: make test-fast leaves it out

COCO128 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco128-seg"


def small_calibration(tmp: Path, n: int = 24):
    """A real (synthetic-image) calibration set from the folder source: seeded shapes on noise."""
    from PIL import Image

    from oace.calibration_data import build_calibration_set

    rng = np.random.default_rng(0)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    for i in range(n):
        h, w = rng.integers(200, 400, 2)
        img = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        y0, x0 = rng.integers(10, h // 2), rng.integers(10, w // 2)
        mask[y0 : y0 + h // 3, x0 : x0 + w // 3] = 255
        img[mask > 0] = rng.integers(130, 255, 3, dtype=np.uint8)
        Image.fromarray(img).save(tmp / "images" / f"s{i:02d}.jpg")
        Image.fromarray(mask).save(tmp / "masks" / f"s{i:02d}.png")
    return build_calibration_set(tmp, count=n, held_out=4, force=True)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    calibration = small_calibration(tmp / "calib")
    model = build_model("segmenter_tiny", seed=0).eval()
    result = export_bundle(model, tmp / "out", calibration=calibration, opts=ExportOptions(
        extra_modes=("dynamic_range",), weights="UNTRAINED seeded tiny", model_version="tiny-test"))
    return result, calibration, model


def test_every_file_lands_with_its_honest_name(tiny_export):
    result, _, _ = tiny_export
    names = sorted(p.name for p in result.out_dir.iterdir())
    for expected in ("oace_segmenter.onnx", "oace_segmenter_fp32.tflite", "oace_segmenter_fp16.tflite",
                     "oace_segmenter_int8.tflite", "oace_segmenter_dynamic_range.tflite", "oace_segmenter_int8.json",
                     "export_report.json", "export_report.md", "calibration_manifest.json", "saved_model"):
        assert expected in names, names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]  # no temp files left behind
    sizes = {k: a.bytes for k, a in result.artifacts.items()}
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]
    assert sizes["dynamic_range"] < sizes["fp32"]


def test_int8_bundle_keeps_the_app_contract(tiny_export):
    result, _, _ = tiny_export
    runner = SegmentRunner(result.out_dir / "oace_segmenter_int8.tflite")
    assert runner.signature == "segment" and runner.output_name == "mask"
    dtypes = {k: (v["dtype"].__name__, list(v["shape"])) for k, v in runner.input_details.items()}
    assert dtypes == {"image": ("uint8", [1, 512, 512, 3]), "clicks": ("int32", [1, 24, 3]),
                      "prev_mask": ("float32", [1, 512, 512, 1])}
    out = runner.runner.get_output_details()["mask"]
    assert out["dtype"].__name__ == "float32" and list(out["shape"]) == [1, 512, 512, 1]


def test_parity_numbers_are_within_tolerance(tiny_export):
    result, _, _ = tiny_export
    by_pair = {(p.reference, p.candidate): p for p in result.parity}
    assert by_pair[("torch", "onnx")].max_abs < 1e-5
    assert by_pair[("torch", "fp32")].max_abs < 1e-5
    assert by_pair[("fp32", "fp16")].max_abs < 1e-3
    assert by_pair[("fp32", "int8")].max_abs < 0.05
    assert by_pair[("fp32", "int8")].samples == 4
    report = json.loads((result.out_dir / "export_report.json").read_text())
    assert report["status"] == "ok" and report["parity"][0]["candidate"] == "onnx"
    assert report["parity_samples"] == {"kind": "held_out_calibration", "count": 4, "seed": 0}


def test_int8_computes_in_integers_except_the_documented_float_ops(tiny_export):
    result, _, _ = tiny_export
    contents = inspect_tflite(result.out_dir / "oace_segmenter_int8.tflite")
    assert contents.flex_ops == []
    # click-encoding matmul and clamp (float by design), the prior's L2 normalization and, in the chain
    # (OACE + disk guidance), the x4 resize of that float embedding before it meets the float disk, and the
    # click refiner's follow-up gate (one clamp of a [1, 1, 1, 1] maximum); every conv is int8
    assert set(contents.float_ops) <= {"BATCH_MATMUL", "MINIMUM", "MUL", "MAXIMUM", "RSQRT", "SUM", "RESIZE_BILINEAR"}
    assert contents.float_ops.get("MUL", 0) <= 2  # the normalization's x * x and x * rsqrt(.), nothing else
    assert contents.float_ops.get("BATCH_MATMUL") == 2 and contents.float_ops.get("MINIMUM") == 3
    assert contents.op_counts["CONV_2D"] > 100 and "CONV_2D" not in contents.float_ops


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_bundle_does_the_multiply_accumulates_pytorch_counts(tiny_export, precision):
    """MACs read from the .tflite (convolutions and the click-encoding matmuls) equal model/summary.py's."""
    from oace.model.summary import count_macs

    result, _, model = tiny_export
    macs = tflite_macs(result.out_dir / f"oace_segmenter_{precision}.tflite")
    assert macs.total == count_macs("segmenter", model.cfg, model.cfg.input_size)
    assert macs.precision == ("int8" if precision == "int8" else "float32")
    if precision == "int8":  # only the click encoding's two products stay float
        assert macs.by_dtype["float32"] == macs.by_op["BATCH_MATMUL"] == 512 * 512 * 3 * (4 * 24)  # 3 disk maps


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_no_layout_transposes_are_left_in_the_bundle(tiny_export, precision):
    """The graph runs channels-last from input to output: onnx2tf's NCHW concatenations are folded."""
    result, _, _ = tiny_export
    contents = inspect_tflite(result.out_dir / f"oace_segmenter_{precision}.tflite")
    assert "TRANSPOSE" not in contents.op_counts
    assert contents.op_counts["CONCATENATION"] >= 5  # the decoder and aggregate concatenations are still there


def click_maps_inside(path: Path, clicks: np.ndarray, image: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Run a bundle keeping every intermediate tensor; return the click encoding's 0/1 maps (the
    outputs of its two MINIMUM ops, the clamps of the disk counts: first disk, then follow-up
    positives and negatives) as [3, H, W]."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    clamps = [op for op in graph.operators
              if max(model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
              == schema.BuiltinOperator.MINIMUM
              and int(np.prod(graph.tensors[op.outputs[0]].shape)) > 1]  # not the refiner's [1, 1, 1, 1] gate
    assert len(clamps) == 2
    interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    runner = interp.get_signature_runner("segment")
    runner(image=image, clicks=clicks, prev_mask=prev)
    first, others = sorted((interp.get_tensor(op.outputs[0]) for op in clamps), key=lambda t: t.size)
    assert first.dtype == others.dtype == np.float32  # float by design: exact 0/1, quantized exactly afterwards
    return np.concatenate([first.reshape(512, 512, 1), others.reshape(512, 512, 2)], axis=-1).transpose(2, 0, 1)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_click_encoding_inside_the_bundle_is_exact(tiny_export, precision):
    """The disks inside the exported file equal the PyTorch encoding pixel for pixel, int8 included."""
    import torch

    from oace.model.click_maps import ClickEncoder
    from oace.model.segmenter import pack_clicks

    result, calibration, _ = tiny_export
    s = next(calibration.iter_samples(held_out=True))
    clicks = pack_clicks([(200, 200, True), (206, 330, True), (0, 511, False), (37, 90, False)], 24)
    got = click_maps_inside(result.out_dir / f"oace_segmenter_{precision}.tflite", clicks, s.image[None], s.prev_mask[None])
    first, follow = ClickEncoder(512, 512, 5)(torch.from_numpy(clicks))
    want = torch.cat([first, follow], dim=1)[0].numpy()
    assert want.sum() == 81 + 81 + (26 + 81)  # first disk, follow-up disk, negatives: a corner quarter + a disk
    assert np.array_equal(got, want)


def test_metadata_describes_the_file(tiny_export):
    result, _, _ = tiny_export
    meta = json.loads((result.out_dir / "oace_segmenter_int8.json").read_text())
    assert meta["sha256"] == sha256_file(result.out_dir / "oace_segmenter_int8.tflite")
    assert meta["signature"] == "segment" and meta["precision"] == "int8"
    assert meta["inputs"]["clicks"]["shape"] == [1, 24, 3] and meta["outputs"]["mask"]["dtype"] == "float32"
    assert meta["in_graph_preprocessing"]["normalization"]["mean"] == [0.485, 0.456, 0.406]


def test_same_inputs_give_the_same_int8_file(tiny_export, tmp_path):
    result, calibration, _ = tiny_export
    a = quantize(result.out_dir / "saved_model", tmp_path / "a.tflite", representative=representative_dataset(calibration))
    b = quantize(result.out_dir / "saved_model", tmp_path / "b.tflite", representative=representative_dataset(calibration))
    assert a.sha256 == b.sha256 == sha256_file(result.out_dir / "oace_segmenter_int8.tflite")


def test_a_failed_quantization_leaves_no_file(tiny_export, tmp_path):
    result, _, _ = tiny_export

    def broken():
        yield {"image": np.zeros((1, 512, 512, 3), np.uint8)}  # missing inputs: the converter fails
        raise RuntimeError("calibration source vanished")

    target = tmp_path / "oace_segmenter_int8.tflite"
    with pytest.raises(Exception):
        quantize(result.out_dir / "saved_model", target, representative=broken)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_int8_below_the_iou_threshold_fails_after_writing_the_report(tiny_export, tmp_path):
    from tests.near_threshold import centre_on_threshold

    _, calibration, _ = tiny_export
    model = centre_on_threshold(build_model("segmenter_tiny", seed=0).eval())
    with pytest.raises(ToolkitError, match=r"int8 mask IoU vs fp32 is .* < 1.0 .*REFUSED.*per-channel"):
        export_bundle(model, tmp_path / "x", calibration=calibration,
                      opts=ExportOptions(precisions=("fp32", "int8"), min_int8_iou=1.0, weights="UNTRAINED"))
    assert json.loads((tmp_path / "x" / "export_report.json").read_text())["status"] == "failed"
    assert (tmp_path / "x" / "oace_segmenter_int8.REFUSED.tflite").exists()
    assert not (tmp_path / "x" / "oace_segmenter_int8.tflite").exists()


def test_flex_ops_are_detected_and_refused(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([4, 4], tf.float32)])
    def invert(x):
        return tf.linalg.inv(x)  # no TFLite builtin: converts only as the Select-TF op FlexMatrixInverse

    conv = tf.lite.TFLiteConverter.from_concrete_functions([invert.get_concrete_function()], invert)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "flex.tflite"
    path.write_bytes(conv.convert())
    contents = inspect_tflite(path)
    assert contents.flex_ops == ["FlexMatrixInverse"]
    with pytest.raises(ToolkitError, match="Select-TF \\(Flex\\) ops FlexMatrixInverse"):
        require_no_flex(contents, path)
    require_no_flex(TFLiteContents({}, {"CONV_2D": 1}, {}, []), path)  # a clean file passes


def test_unknown_precision_and_non_segmenter_are_refused(tiny_export, tmp_path):
    _, calibration, model = tiny_export
    with pytest.raises(ToolkitError, match="unknown precision/variant bf16"):
        export_bundle(model, tmp_path, calibration=calibration, opts=ExportOptions(precisions=("bf16",)))
    with pytest.raises(ToolkitError, match="needs a Segmenter"):
        export_bundle(build_model("prior"), tmp_path, calibration=calibration)


def test_fp32_only_export_needs_no_calibration_set(tmp_path, monkeypatch):
    """`oace export --precision fp32` never builds a calibration set: every form runs on export's seeded
    synthetic samples, and the folder and the report say so (no calibration manifest, calibration null)."""
    import oace.calibration_data
    from oace.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("an fp32-only export built a calibration set")

    monkeypatch.setattr(oace.calibration_data, "build_calibration_set", refuse)
    out = tmp_path / "fp32"
    assert main(["export", "--preset", "segmenter_tiny", "--precision", "fp32", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"oace_segmenter.onnx", "saved_model", "oace_segmenter_fp32.tflite", "oace_segmenter_fp32.json",
            "export_report.json", "export_report.md"} <= names
    assert "calibration_manifest.json" not in names and not [n for n in names if "int8" in n]
    report = json.loads((out / "export_report.json").read_text())
    assert report["status"] == "ok" and report["calibration"] is None and list(report["ops"]) == ["fp32"]
    assert {k: report["parity_samples"][k] for k in ("kind", "count", "seed")} == {"kind": "synthetic", "count": 8, "seed": 0}
    pairs = {(p["reference"], p["candidate"]): p for p in report["parity"]}
    assert pairs[("torch", "fp32")]["samples"] == 8 and pairs[("torch", "fp32")]["max_abs"] < 1e-5
    assert "## Parity on 8 seeded synthetic samples (no calibration set)" in (out / "export_report.md").read_text()
    assert json.loads((out / "oace_segmenter_fp32.json").read_text())["calibration"] is None


def test_cli_export_with_too_few_calibration_images_fails_in_one_line(tmp_path, capsys):
    from oace.cli import main

    ckpt = save_checkpoint(build_model("segmenter_tiny"), tmp_path / "tiny.pt")
    calib = tmp_path / "calib"
    small_calibration(calib, n=6)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--calib", str(calib)]) == 2
    err = capsys.readouterr().err.strip()
    assert "calibration needs >= 100" in err and "\n" not in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.tflite"))


def test_full_size_segmenter_exports_to_an_int8_bundle_end_to_end(tmp_path):
    if not COCO128.is_dir():
        pytest.skip(f"{COCO128} absent")
    from oace.calibration_data import build_calibration_set

    # 32 forced samples: TF's calibrator is single-threaded (~5-8 s per full-size sample here)
    calibration = build_calibration_set(COCO128, count=32, held_out=4, force=True)
    model = build_model("segmenter", seed=0).eval()
    result = export_bundle(model, tmp_path, calibration=calibration,
                           opts=ExportOptions(precisions=("fp32", "int8"), weights="UNTRAINED"))
    int8 = result.artifacts["int8"]
    params = sum(p.numel() for p in model.parameters())
    assert 0.95 < int8.bytes / params < 1.25  # ~1.09 bytes per parameter: about 16 MB for 15.1M params
    assert int8.bytes < result.artifacts["fp32"].bytes / 3
    from oace.model.summary import count_macs

    assert tflite_macs(int8.path).total == count_macs("segmenter", model.cfg, 512)  # 38.66 GMACs
    runner = SegmentRunner(int8.path)
    assert runner.signature == "segment" and set(runner.input_details) == {"image", "clicks", "prev_mask"}
    pairs = {(p.reference, p.candidate): p for p in result.parity}
    assert pairs[("torch", "fp32")].max_abs < 1e-4
    assert pairs[("fp32", "int8")].max_abs < 0.1
    assert result.report["calibration"]["is_coco"] is True


@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-5), ("int8", 0.02)])
def test_tflite_runtime_fallback_runs_the_bundle_like_litert(tiny_export, precision, tolerance):
    result, calibration, _ = tiny_export
    path = result.out_dir / f"oace_segmenter_{precision}.tflite"
    litert = SegmentRunner(path, prefer="ai-edge-litert")
    fallback = SegmentRunner(path, prefer="tflite-runtime")
    assert (litert.runtime, fallback.runtime) == ("ai-edge-litert", "tflite-runtime")
    s = list(calibration.iter_samples(held_out=True))[1]
    a = litert(s.image[None], s.clicks[None], s.prev_mask[None])
    b = fallback(s.image[None], s.clicks[None], s.prev_mask[None])
    assert np.abs(a - b).max() < tolerance
