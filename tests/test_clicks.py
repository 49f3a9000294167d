"""The RITM evaluation robot on small synthetic masks with hand-checked clicks."""

from __future__ import annotations

import numpy as np

from oace.model.clicks import Click, Clicker, next_click


def square(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[r0:r1 + 1, c0:c1 + 1] = True
    return m


def test_empty_prediction_clicks_the_first_centre_pixel_of_the_object():
    # 10x10 square at rows/cols 10..19: distance 5 at rows/cols 14..15, first in row-major order is (14, 14)
    gt = square(30, 30, 10, 19, 10, 19)
    assert next_click(gt, np.zeros_like(gt)) == Click(x=14, y=14, is_positive=True)


def test_image_border_counts_as_outside_the_error_region():
    # square in the corner rows/cols 0..9: with the 1 px zero padding the centre is (4, 4) at distance 5;
    # without the padding the corner pixel (0, 0) would be farthest from any background pixel
    gt = square(20, 20, 0, 9, 0, 9)
    assert next_click(gt, np.zeros_like(gt)) == Click(x=4, y=4, is_positive=True)


def test_false_positive_region_larger_gives_a_negative_click_at_its_centre():
    gt = square(30, 30, 2, 5, 2, 5)                      # 4x4 object, fully predicted
    pred = gt | square(30, 30, 10, 19, 10, 19)           # plus a 10x10 false positive
    assert next_click(gt, pred) == Click(x=14, y=14, is_positive=False)


def test_a_tie_between_fn_and_fp_gives_a_negative_click():
    gt = square(30, 30, 2, 7, 2, 7)                      # 6x6 missed object: max distance 3
    pred = square(30, 30, 20, 25, 20, 25)                # 6x6 false positive: max distance 3
    assert next_click(gt, pred) == Click(x=22, y=22, is_positive=False)


def test_larger_fn_wins_over_smaller_fp():
    gt = square(30, 30, 2, 9, 2, 9)                      # 8x8 missed: max distance 4 at (5, 5)
    pred = square(30, 30, 20, 25, 20, 25)                # 6x6 false positive: max distance 3
    assert next_click(gt, pred) == Click(x=5, y=5, is_positive=True)


def test_ignore_pixels_are_neither_error_nor_clickable():
    gt = square(30, 30, 10, 19, 10, 19)
    ignore = square(30, 30, 10, 19, 10, 14)              # left half of the object ignored
    # remaining false negatives: rows 10..19, cols 15..19; distance 3 first reached at row 12, col 17
    assert next_click(gt, np.zeros_like(gt), ignore) == Click(x=17, y=12, is_positive=True)


def test_the_same_pixel_is_never_clicked_twice():
    gt = square(30, 30, 10, 19, 10, 19)
    clicker = Clicker(gt)
    empty = np.zeros_like(gt)
    first = clicker.make_next_click(empty)
    second = clicker.make_next_click(empty)
    third = clicker.make_next_click(empty)
    # distance-5 pixels in row-major order: (14,14), (14,15), (15,14)
    assert [(c.y, c.x) for c in (first, second, third)] == [(14, 14), (14, 15), (15, 14)]
    clicks = [clicker.make_next_click(empty) for _ in range(40)]
    coords = [(c.y, c.x) for c in [first, second, third, *clicks]]
    assert len(set(coords)) == len(coords)
    assert all(gt[y, x] for y, x in coords)


def test_perfect_prediction_gives_ritms_negative_click_at_the_origin():
    gt = square(12, 12, 3, 8, 3, 8)
    assert next_click(gt, gt.copy()) == Click(x=0, y=0, is_positive=False)


def test_click_label_follows_the_bundle_convention():
    assert Click(1, 2, True).label == 1 and Click(1, 2, False).label == 0


def ritm_opencv_click(gt, pred, not_ignore, not_clicked):
    """RITM's Clicker._get_next_click as published (OpenCV's precise L2 distance transform)."""
    import cv2

    fn = np.pad(gt & ~pred & not_ignore, ((1, 1), (1, 1)), "constant")
    fp = np.pad(~gt & pred & not_ignore, ((1, 1), (1, 1)), "constant")
    fn_dt = cv2.distanceTransform(fn.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1] * not_clicked
    fp_dt = cv2.distanceTransform(fp.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1] * not_clicked
    positive = fn_dt.max() > fp_dt.max()
    ys, xs = np.argwhere(fn_dt == fn_dt.max()).T if positive else np.argwhere(fp_dt == fp_dt.max()).T
    return Click(x=int(xs[0]), y=int(ys[0]), is_positive=bool(positive))


def random_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = rng.integers(20, 120, size=2)
        yy, xx = np.mgrid[:h, :w]
        ell = lambda: ((yy - rng.uniform(0, h)) / rng.uniform(4, h)) ** 2 + ((xx - rng.uniform(0, w)) / rng.uniform(4, w)) ** 2 <= 1
        yield ell(), ell(), rng.random((h, w)) < 0.05


def test_opencv_mode_is_ritms_robot_bit_for_bit(monkeypatch):
    import pytest

    cv2 = pytest.importorskip("cv2")
    # cv2.distanceTransform(DIST_L2, 0) is not deterministic call to call (2 of these 60 shapes);
    # memoize it so RITM's function and ours see the same distance map for the same input.
    real, cache = cv2.distanceTransform, {}

    def memo(src, *args):
        key = (src.tobytes(), src.shape, args)
        if key not in cache:
            cache[key] = real(src, *args)
        return cache[key].copy()

    monkeypatch.setattr(cv2, "distanceTransform", memo)
    for gt, pred, ignore in random_cases(60, seed=11):
        clicker = Clicker(gt, ignore, distance="opencv")
        for _ in range(5):
            expected = ritm_opencv_click(gt, pred, ~ignore, clicker.not_clicked)
            assert clicker.make_next_click(pred) == expected


def test_exact_distances_differ_from_ritms_opencv_only_on_exact_ties():
    import pytest
    from scipy.ndimage import distance_transform_edt

    pytest.importorskip("cv2")
    n = differ = 0
    for gt, pred, ignore in random_cases(60, seed=11):
        exact = {True: distance_transform_edt(np.pad(gt & ~pred & ~ignore, 1))[1:-1, 1:-1],
                 False: distance_transform_edt(np.pad(~gt & pred & ~ignore, 1))[1:-1, 1:-1]}
        clicker = Clicker(gt, ignore)                       # default: scipy, exact
        for _ in range(5):
            ritm = ritm_opencv_click(gt, pred, ~ignore, clicker.not_clicked)
            ours = clicker.make_next_click(pred)
            n += 1
            if ours != ritm:                                 # then both are equally far, exactly
                differ += 1
                assert exact[ours.is_positive][ours.y, ours.x] == exact[ritm.is_positive][ritm.y, ritm.x]
                clicker.clicks[-1] = ritm                    # continue on RITM's path
                clicker.not_clicked[ours.y, ours.x] = True
                clicker.not_clicked[ritm.y, ritm.x] = False
    assert n == 300 and differ < 0.05 * n
