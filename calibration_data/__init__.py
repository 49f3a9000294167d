"""The representative int8 calibration set: real photos, clicks inside real object masks.

    from oace.calibration_data import build_calibration_set, load_coco128_manifest, open_calibration_set

    calib = build_calibration_set("../shared/data/coco128-seg")            # or a COCO root, a mask folder
    calib = open_calibration_set(load_coco128_manifest(), "../shared/data/coco128-seg")  # the committed selection
    calib = build_calibration_set("embedded", force=True)                  # offline, NOT COCO
    for sample in calib.iter_samples(): ...                                # rendered one at a time

The converter's form of a set is `oace.quantize.calibration.representative_dataset(calib)`.
"""

from __future__ import annotations

from pathlib import Path

from oace.calibration_data.builder import CalibrationSet, build_calibration_set, open_calibration_set
from oace.calibration_data.manifest import MANIFEST_NAME, CalibrationManifest, Entry, PrevMaskRecipe
from oace.calibration_data.sampling import CalibrationSample

COCO128_MANIFEST = Path(__file__).resolve().with_name("coco128_manifest.json")


def load_coco128_manifest() -> CalibrationManifest:
    """The committed manifest of the coco128-seg calibration selection (count 200, seed 0)."""
    return CalibrationManifest.load(COCO128_MANIFEST)


__all__ = [
    "CalibrationManifest", "CalibrationSample", "CalibrationSet", "COCO128_MANIFEST", "Entry", "MANIFEST_NAME",
    "PrevMaskRecipe", "build_calibration_set", "load_coco128_manifest", "open_calibration_set",
]
