"""Click simulation for training (issue 6), in network pixels of one training image.

- The first click is positive, drawn uniformly inside the object mask eroded by `margin` pixels
  (the paper's "random point inside the object"; the whole mask when erosion empties it).
- Multi-click training follows RITM: with probability `single_click_prob` a sample keeps only the
  first click (the paper's one-click setting); otherwise it gets 0..`max_extra` extra initial clicks
  (positive inside the eroded object, or negative in the background within `band` pixels of the
  object) and, with probability `iterative_prob`, 1..`max_iterative` iterative clicks. Iterative
  clicks are simulated in the training loop under no_grad (`add_iterative_clicks`): the model
  predicts with the clicks so far and the previous mask fed back, and the next click goes to the
  centre (farthest point from the boundary) of the larger error region, positive for a false
  negative and negative for a false positive, as RITM's `get_next_points` does.

Clicks are int32 rows (x, y, label) with label 1 positive, 0 negative, -1 padding, the layout
`model.click_maps.ClickEncoder` and the export bundle take; row 0 is the first positive click.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from oace.model.click_maps import NEGATIVE, PADDING, POSITIVE
from oace.model.evaluate import iou
from oace.model.segmenter import SegmenterConfig


@dataclasses.dataclass(frozen=True)
class ClickSimConfig:
    max_clicks: int = 24
    margin: int = 3  # erosion of the object for positive clicks, in pixels at the training size
    band: int = 40  # negatives are drawn within this many pixels outside the object
    single_click_prob: float = 0.3
    max_extra: int = 2
    iterative_prob: float = 0.8
    max_iterative: int = 3


def empty_clicks(max_clicks: int) -> np.ndarray:
    out = np.zeros((max_clicks, 3), dtype=np.int32)
    out[:, 2] = PADDING
    return out


def _distance_inside(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel of `region` to the nearest pixel outside it (image border counts as outside)."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def _distance_inside_fast(region: np.ndarray) -> np.ndarray:
    """`_distance_inside` by OpenCV's 5x5 chamfer approximation of the L2 distance: about 14x faster
    than scipy's exact transform at 320x320 (0.26 vs 3.7 ms), deterministic, within ~2 % of exact.
    Used by the click simulation inside the training loop, where it runs per sample per round on the
    main process; the evaluation robot (`model.clicks`) stays exact."""
    import cv2

    padded = np.pad(region, 1).astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from its border (first in raster order on ties)."""
    if not mask.any():
        raise ValueError("interior_point: empty mask")
    dist = _distance_inside(mask)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def _pick(region: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return None
    k = int(rng.integers(ys.size))
    return int(xs[k]), int(ys[k])


def sample_positive(mask: np.ndarray, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    """A uniform point of the mask eroded by `margin` px (of the mask itself if erosion empties it)."""
    inner = _distance_inside(mask) > margin if margin > 0 else mask
    point = _pick(inner, rng) or _pick(mask, rng)
    if point is None:
        raise ValueError("sample_positive: empty mask")
    return point


def sample_negative(mask: np.ndarray, ignore: np.ndarray, rng: np.random.Generator, band: int) -> tuple[int, int] | None:
    background = ~mask & ~ignore
    near = background & (ndimage.distance_transform_edt(~mask) <= band)
    return _pick(near, rng) or _pick(background, rng)


def initial_clicks(
    mask: np.ndarray, ignore: np.ndarray, rng: np.random.Generator, cfg: ClickSimConfig, multi: bool
) -> tuple[np.ndarray, int]:
    """(clicks int32 [max_clicks, 3], number of iterative clicks to simulate) for one sample.

    multi=False gives the first click only and no iterative clicks (prior training, validation).
    """
    clicks = empty_clicks(cfg.max_clicks)
    x, y = sample_positive(mask, rng, cfg.margin)
    clicks[0] = (x, y, POSITIVE)
    if not multi or rng.random() < cfg.single_click_prob:
        return clicks, 0
    n = 1
    for _ in range(int(rng.integers(cfg.max_extra + 1))):
        if rng.random() < 0.5:
            point, label = sample_positive(mask, rng, cfg.margin), POSITIVE
        else:
            point, label = sample_negative(mask, ignore, rng, cfg.band), NEGATIVE
        if point is not None:
            clicks[n] = (point[0], point[1], label)
            n += 1
    iters = int(rng.integers(1, cfg.max_iterative + 1)) if rng.random() < cfg.iterative_prob else 0
    return clicks, min(iters, cfg.max_clicks - n)


def next_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray) -> tuple[int, int, int] | None:
    """RITM's next click: centre of the larger error region; (x, y, label) or None without errors."""
    valid = ~ignore
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    d_fn, d_fp = _distance_inside_fast(fn), _distance_inside_fast(fp)
    best_fn, best_fp = float(d_fn.max(initial=0.0)), float(d_fp.max(initial=0.0))
    if best_fn == 0.0 and best_fp == 0.0:
        return None
    positive = best_fn >= best_fp
    dist = d_fn if positive else d_fp
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y), POSITIVE if positive else NEGATIVE


def place_click(rows: torch.Tensor, click: tuple[int, int, int] | None) -> bool:
    """Write click (x, y, label) into the first padding row of one sample's rows [N, 3]; False when
    there is no click or no free row."""
    free = torch.nonzero(rows[:, 2] == PADDING).flatten()
    if click is None or not free.numel():
        return False
    rows[int(free[0])] = torch.tensor(click, dtype=rows.dtype)
    return True


@torch.no_grad()
def add_iterative_clicks(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    clicks: torch.Tensor,
    iterations: torch.Tensor,
    gt: torch.Tensor,
    ignore: torch.Tensor,
    threshold: float = SegmenterConfig.mask_threshold,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate iterative clicks under no_grad; returns (clicks, previous mask).

    predict(clicks int32 [B, N, 3], prev_mask [B, 1, H, W]) -> probabilities [B, 1, H, W].
    iterations: int [B], how many clicks to add to each sample; gt, ignore: [B, 1, H, W] 0/1.
    Sample i gets `iterations[i]` rounds: predict, add a click at the error, feed the prediction back.
    """
    clicks = clicks.clone()
    prev = torch.zeros_like(gt, dtype=torch.float32)
    rounds = int(iterations.max().item()) if iterations.numel() else 0
    gt_np = gt[:, 0].cpu().numpy() > 0.5
    ig_np = ignore[:, 0].cpu().numpy() > 0.5
    for r in range(rounds):
        probs = predict(clicks, prev).float()
        pred_np = probs[:, 0].cpu().numpy() > threshold
        for i in range(clicks.shape[0]):
            if r >= int(iterations[i]):
                continue
            place_click(clicks[i], next_click(gt_np[i], pred_np[i], ig_np[i]))
            prev[i] = probs[i]
    return clicks, prev


class ClickStats:
    """Counts of the clicks the training samples carried (after iterative simulation): how many
    samples had a negative click, how many clicks of each label. Reset at each epoch."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.samples = self.with_negative = self.positive = self.negative = 0

    def add(self, clicks: torch.Tensor) -> None:
        labels = clicks[:, :, 2]
        self.samples += int(labels.shape[0])
        self.with_negative += int((labels == NEGATIVE).any(dim=1).sum())
        self.positive += int((labels == POSITIVE).sum())
        self.negative += int((labels == NEGATIVE).sum())

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        return {
            "share_with_negative": self.with_negative / self.samples,
            "clicks_per_sample": (self.positive + self.negative) / self.samples,
            "negative_click_share": self.negative / max(1, self.positive + self.negative),
        }


@torch.no_grad()
def robot_obedience(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    clicks: torch.Tensor,
    gt: torch.Tensor,
    ignore: torch.Tensor,
    rounds: int,
    threshold: float = SegmenterConfig.mask_threshold,
) -> dict[str, list[float]]:
    """Follow-up clicks by the robot (`next_click`) and whether each was obeyed.

    predict(clicks, prev_mask) -> probabilities [B, 1, H, W]; clicks hold each sample's clicks so far.
    Each round predicts, places the next click at the centre of the larger error, predicts again
    with that click and the previous mask, and scores 1.0 when the new mask agrees with the click's
    label at the clicked pixel. Returns {"val_obey_pos": [...], "val_obey_neg": [...],
    "val_miou_robot": [...]}: the last with each sample's IoU after the last round (ignore excluded),
    the figure a refiner-only run is judged by (its first mask is fixed).
    """
    out: dict[str, list[float]] = {"val_obey_pos": [], "val_obey_neg": []}
    clicks = clicks.clone()
    gt_np, ig_np = gt[:, 0].cpu().numpy() > 0.5, ignore[:, 0].cpu().numpy() > 0.5
    probs = predict(clicks, torch.zeros_like(gt, dtype=torch.float32))
    for _ in range(rounds):
        pred_np = probs[:, 0].cpu().numpy() > threshold
        added: list[tuple[int, int, int, int]] = []
        for i in range(clicks.shape[0]):
            click = next_click(gt_np[i], pred_np[i], ig_np[i])
            if place_click(clicks[i], click):
                added.append((i, *click))
        if not added:
            break
        probs = predict(clicks, probs)  # the previous mask fed back, as the evaluation protocol does
        for i, x, y, label in added:
            inside = bool(probs[i, 0, y, x] > threshold)
            out["val_obey_pos" if label == POSITIVE else "val_obey_neg"].append(float(inside == (label == POSITIVE)))
    final = probs[:, 0].cpu().numpy() > threshold
    out["val_miou_robot"] = [iou(g, p, ig) for g, p, ig in zip(gt_np, final, ig_np)]
    return out
