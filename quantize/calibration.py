"""What the calibrated modes calibrate on: a calibration set (`oace.calibration_data`) in the form
TensorFlow's converter consumes, streamed.

`representative_dataset(calibration)` is a `TFLiteConverter.representative_dataset`: every call
renders the set's samples one at a time from their manifest entries (`CalibrationSet.iter_samples`),
so calibrating on 200 full-size samples holds one sample's arrays (about 2 MB), not all of them.
The samples, their order and their arrays are those the manifest describes, on every call, so the
int8 file is byte for byte the one a set built up front in memory gives.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from oace.artifacts import Artifact
from oace.calibration_data import CalibrationSet
from oace.quantize.int8 import RepresentativeDataset, quantize


def representative_dataset(calibration: CalibrationSet) -> RepresentativeDataset:
    """The converter's representative dataset: on each call, the bundle inputs of every calibration
    sample (held-out ones excluded), batch of 1, each rendered when the converter asks for it:
    {"image": uint8 [1,512,512,3], "clicks": int32 [1,24,3], "prev_mask": float32 [1,512,512,1]}."""

    def samples() -> Iterator[dict[str, np.ndarray]]:
        for s in calibration.iter_samples():
            yield {"image": s.image[None], "clicks": s.clicks[None], "prev_mask": s.prev_mask[None]}

    return samples


def quantize_calibrated(saved_model_dir: str | os.PathLike, out_path: str | os.PathLike, *, mode: str,
                        calibration: CalibrationSet | None) -> Artifact:
    """One quantization of the float SavedModel (`quantize.int8.quantize`), calibrated on the set's
    streamed samples; `dynamic_range` calibrates on nothing and needs no set (None)."""
    representative = None if calibration is None else representative_dataset(calibration)
    return quantize(saved_model_dir, out_path, mode=mode, representative=representative)
