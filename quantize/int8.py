"""Post-training quantization of the float SavedModel to TFLite, with a representative dataset.

Modes, each named by what it is (never a dynamic-range file called "int8"):
- `int8`: full-integer kernels, per-channel int8 weights, int8 activations, calibrated on the
  representative set. The app-facing dtypes stay as the contract says (image uint8, clicks int32,
  prev_mask and mask float32): quantize/dequantize happen inside the graph.
- `int16x8`: int16 activations, int8 weights (more accurate, much slower on CPU).
- `dynamic_range`: int8 weights, float activations, no calibration.

Two ops stay float on purpose in the calibrated modes: the click encoding's BATCH_MATMUL of 0/1
indicators and the MINIMUM that clamps its counts to 0/1 (model/click_maps.py). The int8
BATCH_MATMUL kernel returns ~0.5 where the product is 1 for these data-by-data operands (measured:
28 of 81 disk pixels lost), while in float it is exact and costs well under 1 ms; a float clamp
yields exact 0/1 maps, which the following QUANTIZE represents exactly. TensorFlow's selective
quantization (QuantizationDebugger denylist) keeps both float.

We quantize with TensorFlow's converter from onnx2tf's float SavedModel rather than onnx2tf's
-oiqt: that cannot calibrate non-float inputs (uint8 image, int32 clicks) and downloads sample data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from oace.artifacts import Artifact, write_bytes_atomic
from oace.errors import InputError, ToolkitError
from oace.reports import tool_versions
from oace.tf_import import import_tensorflow
from oace.tflite import SIGNATURE
from oace.tflite.passes import optimize_for_cpu
from oace.quantize.saved_model_check import check_saved_model as _check_saved_model

MODES = ("int8", "int16x8", "dynamic_range")
CALIBRATED_MODES = ("int8", "int16x8")  # the modes that need a representative dataset
FLOAT_BY_DESIGN = ("BATCH_MATMUL", "MINIMUM")
RepresentativeDataset = Callable[[], Iterator[dict[str, np.ndarray]]]


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_saved_model(saved_model_dir: str | os.PathLike) -> Path:
    """A SavedModel folder fit to quantize (quantize/saved_model_check.py); else a one-line InputError."""
    return _check_saved_model(saved_model_dir, SIGNATURE)


def _load_converter(saved_model_dir: str | os.PathLike):
    """TFLiteConverter.from_saved_model; a SavedModel TensorFlow cannot load is a one-line InputError."""
    tf = import_tensorflow()
    from google.protobuf.message import DecodeError

    try:
        return tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    except (tf.errors.OpError, DecodeError, ValueError, KeyError, OSError, AssertionError) as exc:
        raise InputError(f"{saved_model_dir}: corrupt SavedModel, TensorFlow cannot load it "
                         f"({_first_line(exc)})") from None


def quantize(
    saved_model_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    mode: str = "int8",
    representative: RepresentativeDataset | None = None,
    float_ops: Iterable[str] = FLOAT_BY_DESIGN,
) -> Artifact:
    tf = import_tensorflow()

    if mode not in MODES:
        raise ToolkitError(f"unknown quantization mode {mode!r}; choose from {', '.join(MODES)}")
    if mode in CALIBRATED_MODES and representative is None:
        raise ToolkitError(f"{mode} quantization needs a representative (calibration) dataset")
    check_saved_model(saved_model_dir)
    t0 = time.perf_counter()
    converter = _load_converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "dynamic_range":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        data = converter.convert()
    else:
        int_ops = (
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            if mode == "int8"
            else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        )
        # builtins (never Select-TF/Flex) as the float fallback for the denylisted ops
        converter.target_spec.supported_ops = [int_ops, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.representative_dataset = representative
        denylist = list(float_ops)
        if denylist:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=representative,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=denylist),
            )
            data = debugger.get_nondebug_quantized_model()
        else:
            data = converter.convert()
    data, _ = optimize_for_cpu(data)  # exact layout rewrites, see oace/tflite/passes.py
    write_bytes_atomic(out_path, data)
    return Artifact.of(Path(out_path), time.perf_counter() - t0, tool_versions())
