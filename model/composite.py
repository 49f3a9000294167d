"""Copy-paste composites (Ghiasi et al., CVPR 2021) for training: which object is "the object"
depends on where the click is.

A training image becomes a canvas; 1..`max_objects` objects cut from other training samples
(salient sets: one whole object each) are pasted on it at a random scale, flip and position, each
occluding what it covers. One pasted object with enough visible area is the target; the other
pasted objects and the canvas's own object(s) are background, and are returned as `others`, the
pool of hard negatives for the prior's contrastive loss. The click is drawn on the target later,
as for any sample.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class CompositeConfig:
    prob: float = 0.5  # share of training items replaced by a composite
    max_objects: int = 3
    scale: tuple[float, float] = (0.25, 0.6)  # a pasted object's longer side, as a fraction of the canvas side
    min_visible: float = 0.004  # the target keeps at least this share of the canvas visible (~1,000 px at 512)


@dataclasses.dataclass
class Composite:
    image: np.ndarray  # uint8 [S, S, 3]
    objects: list[np.ndarray]  # visible part of each pasted object, bool [S, S], paste order
    background_objects: np.ndarray  # the canvas's own objects still visible, bool [S, S]


def paste_objects(
    canvas: np.ndarray, canvas_objects: np.ndarray, donors: Sequence[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator, scale: tuple[float, float] = CompositeConfig.scale,
) -> Composite:
    """Paste each donor (image uint8 [h, w, 3], mask bool [h, w]) onto a copy of the square canvas."""
    size = canvas.shape[0]
    image = np.array(canvas, dtype=np.uint8, copy=True)
    objects: list[np.ndarray] = []
    background = np.array(canvas_objects, dtype=bool, copy=True)
    for donor_image, donor_mask in donors:
        patch, patch_mask = _cut(donor_image, donor_mask, size, rng, scale)
        h, w = patch_mask.shape
        y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        placed = np.zeros((size, size), dtype=bool)
        placed[y0:y0 + h, x0:x0 + w] = patch_mask
        image[placed] = patch[patch_mask]
        objects = [m & ~placed for m in objects]
        background &= ~placed
        objects.append(placed)
    return Composite(image, objects, background)


def _cut(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator,
         scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The donor's object box, resized so its longer side is a random share of `size`, maybe flipped."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("paste_objects: a donor mask is empty")
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    crop, crop_mask = image[box], mask[box]
    side = float(rng.uniform(*scale)) * size
    ratio = side / max(crop_mask.shape)
    h = int(np.clip(round(crop_mask.shape[0] * ratio), 1, size))
    w = int(np.clip(round(crop_mask.shape[1] * ratio), 1, size))
    patch = np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))
    soft = np.asarray(Image.fromarray(crop_mask.astype(np.float32)).resize((w, h), Image.BILINEAR))
    patch_mask = soft >= 0.5
    if not patch_mask.any():
        patch_mask = soft >= soft.max() - 1e-6
    if rng.random() < 0.5:
        patch, patch_mask = patch[:, ::-1], patch_mask[:, ::-1]
    return patch, patch_mask


def pick_target(comp: Composite, rng: np.random.Generator, min_visible: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(target mask, others) for a uniformly chosen pasted object with enough visible area; None if none has."""
    size = comp.image.shape[0] * comp.image.shape[1]
    candidates = [i for i, m in enumerate(comp.objects) if m.sum() >= min_visible * size]
    if not candidates:
        return None
    k = candidates[int(rng.integers(len(candidates)))]
    others = comp.background_objects.copy()
    for i, m in enumerate(comp.objects):
        if i != k:
            others |= m
    return comp.objects[k], others
