"""Parity samples export makes itself, for a bundle built without a calibration set (fp32/fp16 and
dynamic range need none): seeded synthetic scenes in the bundle's input contract.

Each scene is a flat background with one elliptical object of another colour, both under noise,
and a positive click inside the object; every second one is a follow-up: a soft previous mask (the
object shifted and blurred) and a negative click beside the object. So every input of the graph
carries values of the kind it sees in use, and the same seed gives the same arrays. They are not
photos: parity compares forms of one model on the same inputs (max/mean absolute error, mask IoU),
which synthetic inputs serve, but held-out calibration photos make the mask IoU mean more, and the
export pipeline uses those whenever it has a calibration set.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from oace.model.segmenter import Segmenter, pack_clicks

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]  # image uint8 [1,S,S,3], clicks int32 [1,N,3], prev_mask float32 [1,S,S,1]
SEED = 0


def synthetic_samples(model: Segmenter, count: int, seed: int = SEED) -> list[Sample]:
    """`count` contract-shaped samples for `model` (its input size and click rows), seeded."""
    rng = np.random.default_rng([seed, count])
    s, n = model.cfg.input_size, model.cfg.max_clicks
    return [_scene(rng, s, n, follow_up=i % 2 == 1) for i in range(count)]


def _scene(rng: np.random.Generator, size: int, max_clicks: int, *, follow_up: bool) -> Sample:
    yy, xx = np.mgrid[:size, :size]
    cy, cx = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
    ry, rx = (int(v) for v in rng.integers(size // 10, size // 4, 2))
    obj = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    colours = rng.integers(0, 256, (2, 3))
    image = np.where(obj[..., None], colours[0], colours[1]) + rng.normal(0.0, 12.0, (size, size, 3))
    clicks = [(cx, cy, True)]
    prev = np.zeros((size, size), np.float32)
    if follow_up:
        dy, dx = (int(v) for v in rng.integers(-size // 16, size // 16 + 1, 2))
        prev = np.clip(ndimage.gaussian_filter(np.roll(obj, (dy, dx), axis=(0, 1)).astype(np.float32), 3.0), 0.0, 1.0)
        beside = cx + rx + 8 if cx + rx + 8 < size else cx - rx - 8
        clicks.append((int(np.clip(beside, 0, size - 1)), cy, False))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image[None], pack_clicks(clicks, max_clicks), prev[None, :, :, None]
