"""Zoom-in for follow-up clicks (RITM's `ZoomIn` inference transform), for any backend.

After the first click(s) the object's extent is roughly known. Running the 512x512 network on a
crop around it instead of on the whole photo gives the object more network pixels, so a corrective
tap acts at a finer scale. Per follow-up click:

1. box: the bounding box of the current mask (probability > threshold) together with every
   positive click, grown about its centre by `expansion` and to at least `min_crop` pixels a side
   (square-ish crops keep the network's aspect), clamped to the photo (`object_box`);
2. the network runs on the crop resized to 512x512, with the clicks that fall inside the crop
   (mapped into it; positive clicks always do) and the previous probabilities cropped the same way;
3. the crop's probabilities are resized back and pasted into a full-size map that is 0 outside
   the crop, as RITM does (`paste`).

Clicks up to `skip_clicks` see the whole photo. All of this happens outside the bundle, in the
caller (Python here, Kotlin in docs/bundle.md): the bundle's contract does not change.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), inclusive-exclusive rows and columns


@dataclasses.dataclass(frozen=True)
class ZoomIn:
    """RITM's defaults: skip_clicks=1, expansion_ratio=1.4, min_crop_size=200 (pixels of the photo)."""

    skip_clicks: int = 1
    expansion: float = 1.4
    min_crop: int = 200

    def __post_init__(self) -> None:
        if self.skip_clicks < 1:
            raise ValueError("zoom-in: skip_clicks must be >= 1 (the first click sees the whole photo)")
        if self.expansion < 1.0 or self.min_crop < 1:
            raise ValueError("zoom-in: expansion must be >= 1 and min_crop >= 1")

    def applies(self, n_clicks: int) -> bool:
        return n_clicks > self.skip_clicks


def object_box(mask: np.ndarray, positives: Sequence[tuple[int, int]], expansion: float, min_crop: int) -> Box:
    """The crop for a follow-up click: the box of `mask` and the positive clicks (x, y), grown by
    `expansion` about its centre and to >= min_crop a side, then clamped to the image.
    The whole image when the mask is empty and there is no positive click."""
    h, w = mask.shape
    region = np.array(mask, dtype=bool, copy=True)
    for x, y in positives:
        region[y, x] = True
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return 0, h, 0, w
    y0, y1 = _grow(int(ys.min()), int(ys.max()), expansion, min_crop, h)
    x0, x1 = _grow(int(xs.min()), int(xs.max()), expansion, min_crop, w)
    return y0, y1, x0, x1


def _grow(lo: int, hi: int, expansion: float, min_size: int, limit: int) -> tuple[int, int]:
    """[lo, hi] inclusive -> [a, b) of length max((hi - lo + 1) * expansion, min_size) about the same
    centre, shifted (not shrunk) to fit in [0, limit) where it can."""
    size = min(limit, max(int(round((hi - lo + 1) * expansion)), min_size))
    centre = (lo + hi + 1) / 2.0
    a = int(round(centre - size / 2.0))
    a = min(max(a, 0), limit - size)
    return a, a + size


def crop_clicks(clicks: Sequence[tuple[int, int, bool]], box: Box) -> list[tuple[int, int, bool]]:
    """Clicks (x, y, positive) inside the box, in the crop's coordinates; the others are dropped (their
    disks would fall outside the crop). Order is kept, so the first positive click stays first."""
    y0, y1, x0, x1 = box
    return [(x - x0, y - y0, p) for x, y, p in clicks if y0 <= y < y1 and x0 <= x < x1]


def paste(crop_prob: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """A crop's probabilities (already at the box's size) into a float32 map of `shape`, 0 elsewhere."""
    y0, y1, x0, x1 = box
    if crop_prob.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"paste: crop probabilities are {crop_prob.shape}, the box is {(y1 - y0, x1 - x0)}")
    out = np.zeros(shape, dtype=np.float32)
    out[y0:y1, x0:x1] = crop_prob
    return out
