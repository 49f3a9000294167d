"""Export speaks the model's one mask threshold: parity masks and the bundle metadata both take
`SegmenterConfig.mask_threshold` (0.49 for the shipped model), never a literal of their own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from oace.artifacts import Artifact
from oace.export.metadata import bundle_metadata
from oace.export.verify import compare
from oace.model.registry import PRESETS, build


def test_parity_masks_are_cut_at_the_threshold_it_is_given():
    ref = [np.full((1, 4, 4, 1), 0.495, np.float32)]
    cand = [np.full((1, 4, 4, 1), 0.2, np.float32)]
    at_049 = compare("fp32", ref, "int8", cand, 0.49)  # the reference is object at 0.49, the candidate is not
    at_050 = compare("fp32", ref, "int8", cand, 0.5)  # both empty: they agree
    assert (at_049.mask_iou, at_049.min_mask_iou, at_049.threshold) == (0.0, 0.0, 0.49)
    assert (at_050.mask_iou, at_050.threshold) == (1.0, 0.5)
    assert at_049.max_abs == at_050.max_abs == float(np.float64(np.float32(0.495)) - np.float64(np.float32(0.2)))


def test_bundle_metadata_carries_the_models_threshold():
    preset = PRESETS["segmenter_tiny"]
    artifact = Artifact(path=Path("oace_segmenter_int8.tflite"), bytes=1, sha256="0" * 64, seconds=0.0, versions={})
    for threshold in (preset.config.mask_threshold, 0.3):
        model = build(preset.arch, dataclasses.replace(preset.config, mask_threshold=threshold))
        meta = bundle_metadata(model, artifact, "int8", model_version="test", calibration=None)
        assert meta["outputs"]["mask"]["threshold"] == threshold
    assert preset.config.mask_threshold == 0.49
