"""Issue 15, class 6 (eval, export, quantize): arguments that make no sense are refused before any
work, on one line naming the flag, from the command line and from the Python functions alike."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_contract import assert_refused, final_paths, run_oace
from oace.errors import InputError, ToolkitError

EVAL_SET_FOLDERS = ("GrabCut", "Berkeley", "DAVIS", "SBD", "COCO_MVal")


def _image_folder(root: Path) -> Path:
    """A folder of images with masks (a calibration source layout), seeded."""
    rng = np.random.default_rng(6)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "images" / f"{i}.jpg")
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


# --- eval --threads -----------------------------------------------------------------------------

@pytest.mark.parametrize("threads", [100000, 0, -3])
def test_eval_threads_out_of_range_are_refused_naming_the_bound(threads, tmp_path):
    from oace.model.evaluate import max_threads

    res = run_oace(["eval", "--checkpoint", tmp_path / "m.pt", "--dataset", "salient", "--data-root", tmp_path,
                    "--threads", threads, "--out", tmp_path / "out"])
    line = assert_refused(res, f"--threads {threads}", f"1..{max_threads()}", max_seconds=60)
    assert f"{os.cpu_count()} CPUs" in line
    assert res.seconds < 60  # refused at once, not after minutes of thread start-up
    assert not (tmp_path / "out").exists()


def test_run_eval_refuses_the_thread_count_too(tmp_path):
    from oace.model.evaluate import EvalConfig, max_threads, run_eval

    with pytest.raises(InputError, match=rf"--threads 100000: must be 1\.\.{max_threads()}"):
        run_eval(["m.pt"], "salient", tmp_path, cfg=EvalConfig(threads=100000), out=tmp_path / "out")
    assert max_threads() == 4 * os.cpu_count()


# --- export --opset, --min-int8-iou ---------------------------------------------------------------

@pytest.mark.parametrize("opset", [1, 7, 10, 21, 99])
def test_export_opset_outside_the_supported_range_is_refused(opset, tmp_path):
    res = run_oace(["export", "--preset", "segmenter_tiny", "--opset", opset, "--out", tmp_path / "out"])
    line = assert_refused(res, f"--opset {opset}", "11..20", max_seconds=60)
    assert "INTERNAL ASSERT" not in line
    assert final_paths(tmp_path) == []


def test_export_onnx_refuses_an_unsupported_opset_from_python(tmp_path, tiny_segmenter):
    from oace.export.onnx_export import OPSETS, check_opset, export_onnx

    with pytest.raises(InputError, match=r"--opset 1: must be 11\.\.20"):
        export_onnx(tiny_segmenter, tmp_path / "m.onnx", opset=1)
    with pytest.raises(InputError, match="--opset True"):
        check_opset(True)
    assert [check_opset(o) for o in OPSETS] == list(range(11, 21))
    assert final_paths(tmp_path) == []


@pytest.mark.parametrize("iou", ["1.01", "-0.1", "nan", "inf"])
def test_export_min_int8_iou_outside_0_1_is_refused(iou, tmp_path):
    res = run_oace(["export", "--preset", "segmenter_tiny", "--min-int8-iou", iou, "--out", tmp_path / "out"])
    assert_refused(res, "--min-int8-iou", "[0, 1]", max_seconds=60)
    assert final_paths(tmp_path) == []


@pytest.mark.parametrize("iou", [1.01, -0.5, math.nan])
def test_export_bundle_refuses_the_iou_gate_before_any_work(iou, tmp_path, tiny_segmenter):
    from oace.pipeline import ExportOptions, export_bundle

    with pytest.raises(InputError, match=r"--min-int8-iou .*: must be in \[0, 1\]"):
        export_bundle(tiny_segmenter, tmp_path / "out", calibration=None, opts=ExportOptions(min_int8_iou=iou))
    with pytest.raises(InputError, match="--opset 9"):
        export_bundle(tiny_segmenter, tmp_path / "out", calibration=None, opts=ExportOptions(opset=9))
    assert not (tmp_path / "out").exists()


def test_a_calibrated_file_without_a_calibration_set_is_refused_before_any_work(tmp_path, tiny_segmenter):
    from oace.pipeline import ExportOptions, export_bundle, needs_calibration

    for opts in (ExportOptions(), ExportOptions(precisions=("fp32",), extra_modes=("int16x8",))):
        assert needs_calibration(opts)
        with pytest.raises(ToolkitError, match=r"needs a calibration set \(--calib\); fp32, fp16 and dynamic_range do not"):
            export_bundle(tiny_segmenter, tmp_path / "out", opts=opts)
    assert not needs_calibration(ExportOptions(precisions=("fp32", "fp16"), extra_modes=("dynamic_range",)))
    assert not (tmp_path / "out").exists()


# --- evaluation sets as calibration data ------------------------------------------------------------

@pytest.mark.parametrize("folder", EVAL_SET_FOLDERS)
def test_quantize_refuses_an_evaluation_set_as_calibration_data(folder, tmp_path):
    calib = _image_folder(tmp_path / folder)
    res = run_oace(["quantize", "--saved-model", tmp_path / "sm", "--calib", calib, "--out", tmp_path / "q" / "m.tflite"])
    line = assert_refused(res, str(calib), "evaluation set", max_seconds=60)
    assert "calibrating on it would leak into the reported metrics" in line


@pytest.mark.parametrize("folder", ["DAVIS", "COCO_MVal"])
def test_export_refuses_an_evaluation_set_as_calibration_data(folder, tmp_path):
    calib = _image_folder(tmp_path / "sets" / folder)
    res = run_oace(["export", "--preset", "segmenter_tiny", "--calib", calib, "--out", tmp_path / "out"])
    assert_refused(res, str(calib), f"folder {folder!r} is an evaluation set", max_seconds=90)
    assert final_paths(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


def test_calibration_and_training_share_one_evaluation_set_check(tmp_path):
    from oace.calibration_data import build_calibration_set
    from oace.model.train_data import parse_specs

    calib = _image_folder(tmp_path / "Berkeley" / "images_and_masks")
    with pytest.raises(InputError) as calibrating:
        build_calibration_set(calib, count=2)
    with pytest.raises(InputError) as training:
        parse_specs(f"salient:{calib}")
    assert str(calibrating.value) == str(training.value).replace("; training on it", "; calibrating on it")
    assert "folder 'Berkeley' is an evaluation set" in str(calibrating.value)


def test_quantize_dynamic_range_takes_no_calibration_so_is_not_refused_for_it(tmp_path):
    calib = _image_folder(tmp_path / "GrabCut")
    res = run_oace(["quantize", "--saved-model", tmp_path / "sm", "--mode", "dynamic_range", "--calib", calib,
                    "--out", tmp_path / "q" / "m.tflite"])
    line = assert_refused(res, str(tmp_path / "sm"), max_seconds=60)
    assert "not a SavedModel folder" in line
