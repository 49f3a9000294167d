"""Does the model listen to the click? Three metrics on any `predict(clicks) -> probabilities`.

- containment: first clicks drawn uniformly over the whole image; the share whose mask (p > thr:
  the model's threshold, SegmenterConfig's default unless given) contains the clicked pixel. A
  click-blind (saliency) model fails every click off its salient object.
- click-target accuracy: on an image with several labelled objects, one click at each object's
  interior point; the share of clicks whose mask overlaps the clicked object more (in pixels)
  than any other object.
- interior spread: per object, the std of IoU over several first clicks inside it, averaged
  (`model.evaluate.click_robustness`'s `mean_std_iou@1`); 0 for a click-blind model.

`heldout_composites` builds the multi-object samples the training validation and the model card
use: copy-paste composites of held-out objects only (model/composite.py), seeded.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from oace.model.composite import Composite, paste_objects
from oace.model.segmenter import SegmenterConfig
from oace.model.train_clicks import interior_point

# predict(first click (x, y)) -> probabilities at the image's size
FirstClickFn = Callable[[int, int], np.ndarray]


@dataclasses.dataclass
class MultiObjectSample:
    image: np.ndarray  # uint8 [S, S, 3]
    objects: list[np.ndarray]  # every labelled object, bool [S, S], disjoint

    @classmethod
    def from_composite(cls, comp: Composite, min_pixels: int) -> "MultiObjectSample":
        objects = [m for m in comp.objects if m.sum() >= min_pixels]
        if comp.background_objects.sum() >= min_pixels:
            objects.append(comp.background_objects)
        return cls(comp.image, objects)


def containment(predict: FirstClickFn, shape: tuple[int, int], rng: np.random.Generator, trials: int,
                thr: float = SegmenterConfig.mask_threshold) -> list[bool]:
    """`trials` first clicks uniform over the image: does each mask contain its clicked pixel?"""
    h, w = shape
    out = []
    for _ in range(trials):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        out.append(bool(predict(x, y)[y, x] > thr))
    return out


def click_target(predict: FirstClickFn, objects: Sequence[np.ndarray], thr: float = SegmenterConfig.mask_threshold) -> list[bool]:
    """One click at each object's interior point: does its mask overlap that object more than any other?"""
    out = []
    for k, obj in enumerate(objects):
        x, y = interior_point(obj)
        pred = predict(x, y) > thr
        overlaps = [int((pred & o).sum()) for o in objects]
        out.append(overlaps[k] > max(v for i, v in enumerate(overlaps) if i != k))
    return out


def interior_spread(predict: FirstClickFn, obj: np.ndarray, rng: np.random.Generator, trials: int = 3,
                    thr: float = SegmenterConfig.mask_threshold) -> float:
    """Std (population) of the IoU of `trials` first clicks drawn uniformly inside the object."""
    ys, xs = np.nonzero(obj)
    picks = rng.choice(ys.size, size=min(trials, ys.size), replace=False)
    ious = []
    for k in picks:
        pred = predict(int(xs[k]), int(ys[k])) > thr
        ious.append((pred & obj).sum() / max(1, (pred | obj).sum()))
    return float(np.std(ious))


def heldout_composites(canvases: Sequence[tuple[np.ndarray, np.ndarray]], donors: Sequence[tuple[np.ndarray, np.ndarray]],
                       n: int, seed: int, size: int, min_pixels: int | None = None) -> list[MultiObjectSample]:
    """n seeded composites: canvas (image, its objects) resized to size, 2-3 donors (image, mask) pasted.
    Only samples with >= 2 objects of >= min_pixels (default 0.4 % of the image) are kept."""
    from PIL import Image

    min_pixels = min_pixels if min_pixels is not None else int(0.004 * size * size)
    rng = np.random.default_rng(seed)
    out: list[MultiObjectSample] = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        image, objects = canvases[int(rng.integers(len(canvases)))]
        canvas = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        canvas_obj = np.asarray(Image.fromarray(objects.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
        picks = rng.choice(len(donors), size=min(len(donors), int(rng.integers(2, 4))), replace=False)
        comp = paste_objects(canvas, canvas_obj, [donors[int(k)] for k in picks], rng)
        sample = MultiObjectSample.from_composite(comp, min_pixels)
        if len(sample.objects) >= 2:
            out.append(sample)
    return out


def multi_object_metrics(predict_for: Callable[[np.ndarray], FirstClickFn], samples: Sequence[MultiObjectSample],
                         containment_trials: int = 3, seed: int = 0,
                         thr: float = SegmenterConfig.mask_threshold) -> dict[str, float | int]:
    """Click-target accuracy, containment and interior spread (std of IoU over 3 clicks inside each
    object, averaged) on multi-object samples; predict_for(image) -> FirstClickFn."""
    rng = np.random.default_rng(seed)
    hits, contained, spread = [], [], []
    for s in samples:
        predict = predict_for(s.image)
        hits += click_target(predict, s.objects, thr)
        contained += containment(predict, s.image.shape[:2], rng, containment_trials, thr)
        spread += [interior_spread(predict, o, rng, thr=thr) for o in s.objects]
    return {
        "interior_spread": float(np.mean(spread)) if spread else float("nan"),
        "click_target_accuracy": float(np.mean(hits)) if hits else float("nan"),
        "click_target_clicks": len(hits),
        "containment": float(np.mean(contained)) if contained else float("nan"),
        "containment_clicks": len(contained),
        "samples": len(samples),
    }
