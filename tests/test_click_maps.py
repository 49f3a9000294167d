"""In-graph click encoding: exact integer disks, labels routed to the right maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oace.model.click_maps import ClickEncoder, disk_rectangles
from oace.model.segmenter import pack_clicks


def brute_force_disk(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)


def encode(clicks, h=64, w=48, r=5):
    first, maps = ClickEncoder(h, w, r)(torch.from_numpy(pack_clicks(clicks, 24)))
    return first[0, 0].numpy(), maps[0, 0].numpy(), maps[0, 1].numpy()


def test_radius_5_disk_has_81_pixels_centered_on_the_click():
    first, pos, neg = encode([(20, 30, True)])
    assert first.sum() == 81  # integer points with dx^2 + dy^2 <= 25
    assert np.array_equal(first, brute_force_disk(64, 48, 20, 30, 5))
    assert first[30, 20] == 1 and first[30, 25] == 1 and first[30, 26] == 0 and first[35, 20] == 1 and first[34, 24] == 0
    assert pos.sum() == 0 and neg.sum() == 0  # a single click leaves the click maps empty


def test_clicks_near_the_border_are_clipped_not_wrapped():
    first, _, _ = encode([(0, 0, True)])
    assert first.sum() == brute_force_disk(64, 48, 0, 0, 5).sum() == 26  # quarter disk incl. axes


def test_follow_up_clicks_go_to_positive_and_negative_maps():
    clicks = [(10, 10, True), (30, 40, True), (40, 10, False), (5, 60, False)]
    first, pos, neg = encode(clicks)
    assert np.array_equal(first, brute_force_disk(64, 48, 10, 10, 5))
    assert np.array_equal(pos, brute_force_disk(64, 48, 30, 40, 5))
    expected_neg = np.maximum(brute_force_disk(64, 48, 40, 10, 5), brute_force_disk(64, 48, 5, 60, 5))
    assert np.array_equal(neg, expected_neg)


def test_padding_rows_draw_nothing_and_a_negative_first_row_gives_no_prior_disk():
    packed = pack_clicks([(10, 10, False)], 24)
    packed[0, 5] = (20, 20, -1)  # a padding row with coordinates set still draws nothing
    first, maps = ClickEncoder(64, 48, 5)(torch.from_numpy(packed))
    assert first.sum() == 0
    assert maps[0, 0].sum() == 0 and np.array_equal(maps[0, 1].numpy(), brute_force_disk(64, 48, 10, 10, 5))


def test_encoding_uses_only_integer_arithmetic_for_distances():
    enc = ClickEncoder(512, 512, 5)
    assert {enc.grid_x.dtype, enc.grid_y.dtype, enc.rect_dx2.dtype, enc.rect_dy2.dtype} == {torch.int32}
    # the farthest corner still draws its exact quarter disk: no float squared distance to collapse
    first, _ = enc(torch.tensor([[[511, 511, 1]]], dtype=torch.int32))
    assert first.sum() == 26


@pytest.mark.parametrize("radius,expected", [(5, [(0, 5), (3, 4), (4, 3), (5, 0)]), (1, [(0, 1), (1, 0)]), (0, [(0, 0)])])
def test_disk_is_the_union_of_these_rectangles(radius, expected):
    assert disk_rectangles(radius) == expected


@pytest.mark.parametrize("radius", [1, 3, 5, 7, 12])
def test_rectangle_union_equals_the_brute_force_disk_for_random_clicks(radius):
    rng = np.random.default_rng(radius)
    h, w, n = 40, 56, 24
    clicks = np.stack([rng.integers(-3, w + 3, (2, n)), rng.integers(-3, h + 3, (2, n)), rng.integers(-1, 2, (2, n))], -1)
    clicks[:, 0, 2] = 1
    first, maps = ClickEncoder(h, w, radius)(torch.from_numpy(clicks.astype(np.int32)))
    for b in range(2):
        want = [np.zeros((h, w), np.float32) for _ in range(3)]
        for i, (x, y, label) in enumerate(clicks[b]):
            disk = brute_force_disk(h, w, x, y, radius)
            channel = 0 if (i == 0 and label == 1) else 1 if label == 1 else 2 if label == 0 else None
            if channel is not None:
                want[channel] = np.maximum(want[channel], disk)
        assert np.array_equal(first[b, 0].numpy(), want[0])
        assert np.array_equal(maps[b, 0].numpy(), want[1]) and np.array_equal(maps[b, 1].numpy(), want[2])
