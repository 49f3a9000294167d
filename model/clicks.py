"""The `Click` record and the RITM evaluation click robot.

The robot is RITM's `isegm.inference.clicker.Clicker._get_next_click`, step for step:
1. false negatives = object & ~pred & ~ignore; false positives = ~object & pred & ~ignore;
2. both are zero-padded by 1 px (so the image border counts as outside the error region);
3. L2 distance transform of each (exact, scipy; or RITM's OpenCV one), padding dropped;
4. both multiplied by the not-clicked map (a pixel is never clicked twice);
5. positive iff max(fn distance) > max(fp distance) (a tie gives a negative click);
6. the click is the first arg-max in row-major order (`np.argwhere(dt == max)[0]`).

When no unclicked error pixel is left (both maxima 0) RITM still returns a click: a negative one at
the first pixel, (0, 0). We keep that, so that the numbers match RITM's; with mIoU runs of 20 clicks
it happens only after a perfect (or all-error-pixels-clicked) prediction.

Coordinates are in the sample's original pixels: `y` = row, `x` = column.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import distance_transform_edt


@dataclasses.dataclass(frozen=True)
class Click:
    """One user click: `x` column, `y` row (pixels), positive (on the object) or negative."""

    x: int
    y: int
    is_positive: bool

    @property
    def label(self) -> int:
        """Bundle label: 1 positive, 0 negative."""
        return 1 if self.is_positive else 0


DISTANCES = ("scipy", "opencv")
# "scipy": exact distances, deterministic (the default). "opencv": RITM's own code path
# (cv2.distanceTransform(DIST_L2, 0), float32), which breaks exact ties differently on ~1-2% of clicks
# and is not deterministic: on 2 of 60 random shapes its output differs from call to call, even
# single-threaded (measured here, opencv-python 4.11.0.86), so evaluations would not reproduce.
DEFAULT_DISTANCE = "scipy"


def _padded_edt(region: np.ndarray, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
    padded = np.pad(region, ((1, 1), (1, 1)), mode="constant")
    if distance == "opencv":
        import cv2

        dt = cv2.distanceTransform(padded.astype(np.uint8), cv2.DIST_L2, 0)
    elif distance == "scipy":
        dt = distance_transform_edt(padded)
    else:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    return dt[1:-1, 1:-1]


def next_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None,
               not_clicked: np.ndarray | None = None, distance: str = DEFAULT_DISTANCE) -> Click:
    """RITM's next click for boolean HxW `gt`, `pred`, `ignore` and `not_clicked` maps.

    distance: "scipy" (exact Euclidean distances, float64; the default) or "opencv" (RITM's own
    `cv2.distanceTransform(DIST_L2, 0)`, float32). They differ only where two candidate pixels are at
    exactly the same distance: OpenCV's float32 rounding can make one of them look larger, so RITM
    breaks such ties differently (about 2% of clicks on random shapes; see docs/evaluation.md).
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
    valid = np.ones_like(gt) if ignore is None else ~np.asarray(ignore, dtype=bool)
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    fn_dt = _padded_edt(fn, distance)
    fp_dt = _padded_edt(fp, distance)
    if not_clicked is not None:
        fn_dt = fn_dt * not_clicked
        fp_dt = fp_dt * not_clicked
    fn_max = fn_dt.max()
    fp_max = fp_dt.max()
    positive = bool(fn_max > fp_max)
    dt, best = (fn_dt, fn_max) if positive else (fp_dt, fp_max)
    y, x = np.argwhere(dt == best)[0]
    return Click(x=int(x), y=int(y), is_positive=positive)


class Clicker:
    """Holds one object's ground truth and the clicks made so far; `make_next_click(pred)` adds one."""

    def __init__(self, gt: np.ndarray, ignore: np.ndarray | None = None, distance: str = DEFAULT_DISTANCE) -> None:
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.distance = distance
        self.gt = np.asarray(gt, dtype=bool)
        self.ignore = np.zeros_like(self.gt) if ignore is None else np.asarray(ignore, dtype=bool)
        self.not_clicked = np.ones_like(self.gt)
        self.clicks: list[Click] = []

    def add_click(self, click: Click) -> None:
        self.clicks.append(click)
        self.not_clicked[click.y, click.x] = False

    def make_next_click(self, pred: np.ndarray) -> Click:
        click = next_click(self.gt, pred, self.ignore, self.not_clicked, self.distance)
        self.add_click(click)
        return click

    def __len__(self) -> int:
        return len(self.clicks)
