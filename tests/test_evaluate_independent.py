"""The protocol against a deliberately independent reimplementation (plain loops, brute-force distances).

The reference below uses nothing from the toolkit (no model.clicks, no scipy, no metric function):
the robot, IoU, NoC and mIoU are written again from RITM's definition, and must give the same
clicks, curves and numbers as `run_protocol` + `compute_metrics` on a seeded synthetic set with a
noisy fake model.
"""

from __future__ import annotations


import numpy as np
import pytest

from oace.model.evaluate import compute_metrics, run_protocol

MAX_CLICKS = 20


def synthetic_set(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(18, 34)), int(rng.integers(18, 34))
        yy, xx = np.mgrid[:h, :w]
        gt = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 4))):  # union of ellipses, some touching the border
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ry, rx = rng.uniform(3, h / 2), rng.uniform(3, w / 2)
            gt |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        ignore = np.zeros((h, w), bool)
        if i % 3 == 0:  # an ignore band along the object's outer boundary (as GrabCut's 128)
            grown = gt.copy()
            grown[1:] |= gt[:-1]
            grown[:-1] |= gt[1:]
            grown[:, 1:] |= gt[:, :-1]
            grown[:, :-1] |= gt[:, 1:]
            ignore = grown & ~gt
        if i % 4 == 1:  # some random ignore specks
            ignore |= (rng.random((h, w)) < 0.03) & ~gt
        if not gt.any():
            gt[h // 2, w // 2] = True
        out.append((gt, ignore))
    return out


class NoisyModel:
    """Probabilities = noisy object prior, overwritten by disks around clicks (later clicks win)."""

    def __init__(self, gt: np.ndarray, sample_id: int) -> None:
        self.gt, self.sid = gt, sample_id

    def __call__(self, clicks) -> np.ndarray:
        h, w = self.gt.shape
        rng = np.random.default_rng([self.sid, len(clicks)])
        sigma = 0.3 if self.sid % 5 == 4 else 0.3 / len(clicks) ** 0.7  # every 5th object stays hard
        prob = np.clip(0.2 + 0.45 * self.gt + rng.normal(0, sigma, (h, w)), 0, 1)
        yy, xx = np.mgrid[:h, :w]
        for c in clicks:
            x, y, pos = (c.x, c.y, c.is_positive) if hasattr(c, "x") else c
            disk = (yy - y) ** 2 + (xx - x) ** 2 <= 9
            prob[disk] = 0.95 if pos else 0.02
        return prob.astype(np.float32)


# ---------------------------------------------------------------- the independent version

def sq_dist_to_outside(region: np.ndarray, r: int, c: int) -> int:
    """Squared distance from (r, c) to the nearest pixel outside `region`, the 1-px frame counting as outside."""
    h, w = region.shape
    best = min(r + 1, h - r, c + 1, w - c) ** 2
    for rr in range(h):
        for cc in range(w):
            if not region[rr][cc]:
                d = (rr - r) ** 2 + (cc - c) ** 2
                if d < best:
                    best = d
    return best


def independent_click(gt, pred, ignore, clicked):
    h, w = gt.shape
    best = {True: (0, None), False: (0, None)}  # squared distance, (r, c)
    for r in range(h):
        for c in range(w):
            if ignore[r][c] or (r, c) in clicked:
                continue
            for positive in (True, False):
                region = (gt & ~pred & ~ignore) if positive else (~gt & pred & ~ignore)
                if region[r][c]:
                    d = sq_dist_to_outside(region, r, c)
                    if d > best[positive][0]:  # strict: the first pixel in row-major order keeps a tie
                        best[positive] = (d, (r, c))
    if best[True][0] > best[False][0]:
        return best[True][1], True
    if best[False][1] is None:  # nothing left to click: RITM clicks (0, 0) negative
        return (0, 0), False
    return best[False][1], False


def independent_iou(gt, pred, ignore):
    inter = union = 0
    h, w = gt.shape
    for r in range(h):
        for c in range(w):
            if ignore[r][c]:
                continue
            inter += bool(gt[r][c] and pred[r][c])
            union += bool(gt[r][c] or pred[r][c])
    return inter / union


def independent_curve(gt, ignore, model):
    pred = np.zeros_like(gt)
    clicks, clicked, ious = [], set(), []
    for _ in range(MAX_CLICKS):
        (r, c), positive = independent_click(gt, pred, ignore, clicked)
        clicked.add((r, c))
        clicks.append((c, r, positive))
        pred = model(clicks) > 0.49
        ious.append(independent_iou(gt, pred, ignore))
    return ious, clicks


def independent_noc(curve, thr):
    for k, v in enumerate(curve, start=1):
        if v >= thr:
            return k
    return MAX_CLICKS


# ---------------------------------------------------------------- the comparison

@pytest.fixture(scope="module")
def both():
    data = synthetic_set(12, seed=7)
    ours, theirs = [], []
    for i, (gt, ignore) in enumerate(data):
        run = run_protocol(gt, ignore, NoisyModel(gt, i), MAX_CLICKS, distance="scipy")  # exact, as the brute force
        ious, clicks = run.ious, run.clicks
        ours.append((ious, [(c.x, c.y, c.is_positive) for c in clicks]))
        theirs.append(independent_curve(gt, ignore, NoisyModel(gt, i)))
    return ours, theirs


def test_same_clicks_and_iou_curves(both):
    ours, theirs = both
    for (ious, clicks), (ref_ious, ref_clicks) in zip(ours, theirs):
        assert clicks == ref_clicks
        assert ious == pytest.approx(ref_ious, abs=1e-6)


def test_same_noc_and_miou(both):
    ours, theirs = both
    m = compute_metrics([o[0] for o in ours], MAX_CLICKS)
    curves = [t[0] for t in theirs]
    n = len(curves)
    for thr, key in ((0.85, "noc@85"), (0.90, "noc@90")):
        assert m[key] == sum(independent_noc(c, thr) for c in curves) / n
    for k in range(1, MAX_CLICKS + 1):
        assert m[f"miou@{k}"] == pytest.approx(100 * sum(c[k - 1] for c in curves) / n, abs=1e-4)
    assert m["fail@90"] == pytest.approx(100 * sum(all(v < 0.9 for v in c) for c in curves) / n, abs=1e-9)
    # the synthetic set is not degenerate: NoC varies and negative clicks occur
    nocs = {independent_noc(c, 0.9) for c in curves}
    assert len(nocs) >= 3 and MAX_CLICKS in nocs
    assert any(not pos for _, clicks in theirs for *_, pos in clicks)
