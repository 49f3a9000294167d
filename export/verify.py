"""Parity between the forms of one model: max/mean absolute error and mask IoU on real samples."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from oace.model.evaluate import iou

Predict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (image, clicks, prev) -> mask [1,S,S,1]


@dataclasses.dataclass(frozen=True)
class Parity:
    reference: str
    candidate: str
    samples: int
    max_abs: float
    mean_abs: float
    mask_iou: float  # mean over samples of IoU(prob > threshold); two empty masks agree (1.0)
    min_mask_iou: float
    threshold: float  # the model's mask threshold (SegmenterConfig.mask_threshold, the bundle metadata's)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def mask_iou(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """IoU of the two masks cut at threshold, as the protocol scores (`model.evaluate.iou`)."""
    return iou(a > threshold, b > threshold)


def compare(reference: str, ref_outputs: Sequence[np.ndarray], candidate: str, outputs: Sequence[np.ndarray],
            threshold: float) -> Parity:
    """threshold: where a probability is object, the model's own (`SegmenterConfig.mask_threshold`)."""
    diffs = [np.abs(a.astype(np.float64) - b.astype(np.float64)) for a, b in zip(ref_outputs, outputs)]
    ious = [mask_iou(a, b, threshold) for a, b in zip(ref_outputs, outputs)]
    return Parity(
        reference, candidate, len(diffs), float(max(d.max() for d in diffs)), float(np.mean([d.mean() for d in diffs])),
        float(np.mean(ious)), float(min(ious)), threshold,
    )


def run_all(predict: Predict, samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [predict(image, clicks, prev) for image, clicks, prev in samples]
