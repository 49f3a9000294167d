"""Step 3: SavedModel -> float TFLite (fp32, or fp16 weights)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from oace.artifacts import Artifact, write_bytes_atomic
from oace.reports import tool_versions
from oace.tf_import import import_tensorflow
from oace.tflite import SIGNATURE
from oace.tflite.passes import optimize_for_cpu

FLOAT_PRECISIONS = ("fp32", "fp16")


def saved_model_to_tflite(saved_model_dir: str | os.PathLike, out_path: str | os.PathLike, *, precision: str = "fp32") -> Artifact:
    tf = import_tensorflow()

    if precision not in FLOAT_PRECISIONS:
        raise ValueError(f"precision must be one of {FLOAT_PRECISIONS}")
    t0 = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops, ever
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    data, _ = optimize_for_cpu(converter.convert())  # exact layout rewrites, see oace/tflite/passes.py
    write_bytes_atomic(out_path, data)
    return Artifact.of(Path(out_path), time.perf_counter() - t0, tool_versions())
