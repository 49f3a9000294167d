"""Training click simulation: first clicks inside the eroded object, RITM-style iterative clicks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oace.model.click_maps import NEGATIVE, PADDING, POSITIVE
from oace.model.train_clicks import (
    ClickSimConfig, add_iterative_clicks, initial_clicks, interior_point, next_click, sample_negative, sample_positive,
)


def _square(size: int = 32, lo: int = 8, hi: int = 24) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[lo:hi, lo:hi] = True
    return m


def test_interior_point_is_the_centre_of_a_square():
    # 16x16 square at 8..23: distance to the outside peaks (8 px) at rows/cols 15 and 16; first in raster order
    assert interior_point(_square()) == (15, 15)


def test_positive_clicks_stay_inside_the_eroded_object():
    mask = _square()
    rng = np.random.default_rng(0)
    points = [sample_positive(mask, rng, margin=3) for _ in range(200)]
    xs, ys = np.array(points).T
    # distance to the outside > 3 means 3 pixels of object between the click and the border
    assert xs.min() >= 11 and xs.max() <= 20 and ys.min() >= 11 and ys.max() <= 20
    assert len(set(points)) > 50  # uniform over the 100 eroded pixels, not a fixed point
    thin = np.zeros((32, 32), dtype=bool)
    thin[10, 5:20] = True  # erosion empties it: fall back to the mask itself
    assert all(thin[y, x] for x, y in (sample_positive(thin, rng, 3) for _ in range(20)))


def test_negative_clicks_are_background_near_the_object():
    mask, ignore = _square(), np.zeros((32, 32), dtype=bool)
    ignore[:, :4] = True
    rng = np.random.default_rng(1)
    for _ in range(100):
        x, y = sample_negative(mask, ignore, rng, band=3)
        assert not mask[y, x] and not ignore[y, x]
        assert 5 <= x <= 26 and 5 <= y <= 26  # within 3 px of the square


def test_initial_clicks_layout_and_single_click_mode():
    mask, ignore = _square(), np.zeros((32, 32), dtype=bool)
    clicks, iters = initial_clicks(mask, ignore, np.random.default_rng(0), ClickSimConfig(max_clicks=6), multi=False)
    assert clicks.dtype == np.int32 and clicks.shape == (6, 3)
    assert clicks[0, 2] == POSITIVE and mask[clicks[0, 1], clicks[0, 0]]
    assert (clicks[1:, 2] == PADDING).all() and iters == 0
    cfg = ClickSimConfig(max_clicks=6, single_click_prob=0.0, iterative_prob=1.0, max_iterative=3)
    counts = []
    for seed in range(40):
        c, it = initial_clicks(mask, ignore, np.random.default_rng(seed), cfg, multi=True)
        counts.append(((c[:, 2] != PADDING).sum(), it))
        labels = c[c[:, 2] != PADDING, 2]
        assert labels[0] == POSITIVE and 1 <= it <= 3
    assert {n for n, _ in counts} == {1, 2, 3}  # 0..max_extra extra clicks


def test_next_click_goes_to_the_centre_of_the_larger_error():
    gt = _square()
    pred = np.zeros_like(gt)
    pred[8:24, 8:16] = True  # right half of the object missed: false negative 16 rows x 8 cols
    pred[0:3, 0:3] = True  # a small false positive
    x, y, label = next_click(gt, pred, np.zeros_like(gt))
    assert label == POSITIVE and (x, y) == (19, 11)  # distance 4 inside the 8-wide band, first in raster order
    # a larger false positive wins
    pred2 = gt.copy()
    pred2[0:6, 0:30] = True
    x, y, label = next_click(gt, pred2, np.zeros_like(gt))
    assert label == NEGATIVE and not gt[y, x] and y <= 5
    assert next_click(gt, gt.copy(), np.zeros_like(gt)) is None


def test_iterative_clicks_feed_the_prediction_back():
    gt = torch.from_numpy(_square()).float().view(1, 1, 32, 32).repeat(2, 1, 1, 1)
    clicks = torch.full((2, 4, 3), PADDING, dtype=torch.int32)
    clicks[:, 0] = torch.tensor([15, 15, POSITIVE], dtype=torch.int32)
    seen = []

    def predict(c: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        seen.append((c.clone(), prev.clone()))
        out = torch.zeros(2, 1, 32, 32)
        out[:, :, 8:24, 8:16] = 0.9  # left half found
        return out

    new, prev = add_iterative_clicks(predict, clicks, torch.tensor([2, 0]), gt, torch.zeros_like(gt))
    assert len(seen) == 2  # two rounds: the most any sample asked for
    assert float(seen[0][1].abs().sum()) == 0.0  # first round: no previous mask
    assert float(seen[1][1][0].sum()) == pytest.approx(0.9 * 128) and float(seen[1][1][1].sum()) == 0.0  # fed back for sample 0 only
    assert new[0, 1].tolist() == [19, 11, POSITIVE] and new[0, 2].tolist() == [19, 11, POSITIVE]
    assert new[1, 1:, 2].tolist() == [PADDING] * 3  # sample 1 asked for none
    assert float(prev[1].sum()) == 0.0
