"""The JSON an app reads beside a bundle: what the file is and how to feed it (docs/bundle.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oace.model.segmenter import IMAGENET_MEAN, IMAGENET_STD, Segmenter
from oace import __version__
from oace.artifacts import Artifact, write_json_atomic
from oace.reports import git_sha
from oace.tflite import SIGNATURE

PRECISION_TEXT = {
    "fp32": "float32 weights and activations",
    "fp16": "float16 weights, float32 activations",
    "int8": "full-integer: int8 per-channel weights, int8 activations (click-encoding matmul in float)",
    "int16x8": "int16 activations, int8 weights",
    "dynamic_range": "int8 weights, float activations (dynamic-range quantization)",
}


def bundle_metadata(model: Segmenter, artifact: Artifact, precision: str, *, model_version: str, calibration: dict | None) -> dict[str, Any]:
    s, n = model.cfg.input_size, model.cfg.max_clicks
    return {
        "format": "oace-bundle/1",
        "file": artifact.path.name,
        "sha256": artifact.sha256,
        "bytes": artifact.bytes,
        "model_version": model_version,
        "precision": precision,
        "precision_detail": PRECISION_TEXT[precision],
        "signature": SIGNATURE,
        "inputs": {
            "image": {"dtype": "uint8", "shape": [1, s, s, 3], "layout": "NHWC", "range": "RGB 0..255",
                      "note": f"the photo resized (not cropped) to {s}x{s}"},
            "clicks": {"dtype": "int32", "shape": [1, n, 3], "rows": "(x, y, label)",
                       "labels": {"1": "positive", "0": "negative", "-1": "padding"},
                       "coordinates": f"pixels of the {s}x{s} input, x = column, y = row",
                       "row0": "the first positive click (drives the OACE prior)"},
            "prev_mask": {"dtype": "float32", "shape": [1, s, s, 1], "range": "0..1", "note": "zeros on the first click"},
        },
        "outputs": {"mask": {"dtype": "float32", "shape": [1, s, s, 1], "range": "0..1 probability", "threshold": model.cfg.mask_threshold}},
        "in_graph_preprocessing": {
            "normalization": {"scale": 1 / 255, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "click_encoding": f"binary disks of radius {model.cfg.click_radius} px, integer arithmetic",
        },
        "calibration": calibration,
        "toolkit_version": __version__,
        "git_sha": git_sha(),
    }


def write_metadata(path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    return write_json_atomic(path, metadata)
