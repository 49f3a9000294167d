"""Clicks and previous masks for one object, as an annotator would make them, and the network arrays.

Clicks are chosen on the 512x512 network grid (where the model sees them) among the grid pixels
that some photo pixel maps onto (`model.predictor.to_network_xy`), and recorded as that photo pixel,
so a click stored in photo pixels maps back to exactly the grid pixel it was chosen at. A positive
click must be inside the object both in the photo and on the grid, a negative one outside both,
neither on an ignore pixel; both stay >= 5 px from the object border (photo and grid) when the
mask allows it, else as far as possible.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

from oace.calibration_data.manifest import CLICK_MARGIN_PX, MAX_CLICKS, PROB_THRESHOLD, SIZE, PrevMaskRecipe
from oace.model.data import Sample
from oace.model.predictor import resize_image, resize_prob, to_network_xy
from oace.model.segmenter import check_clicks, pack_clicks
from oace.errors import InputError

FIX_RADIUS = 12  # a follow-up click "fixes" this neighbourhood (grid px): the next one goes elsewhere
BACKGROUND_BAND = (CLICK_MARGIN_PX, 40)  # "nearby background" for negatives: grid px from the object


@dataclasses.dataclass(frozen=True)
class CalibrationSample:
    """One calibration sample as the network sees it (no batch axis)."""

    name: str
    image: np.ndarray  # uint8 [512, 512, 3]
    clicks: np.ndarray  # int32 [24, 3]
    prev_mask: np.ndarray  # float32 [512, 512, 1]
    mask: np.ndarray  # bool [512, 512]: the object, for IoU checks


class Grid:
    """The photo <-> 512 grid mapping of one photo size, and photo maps looked up on the grid."""

    def __init__(self, width: int, height: int, size: int = SIZE) -> None:
        self.width, self.height, self.size = width, height, size
        nx = np.array([to_network_xy(x, 0, width, height, size)[0] for x in range(width)])
        ny = np.array([to_network_xy(0, y, width, height, size)[1] for y in range(height)])
        self.px = _representative(nx, size)  # grid column -> photo column (-1: no photo pixel maps there)
        self.py = _representative(ny, size)
        self.hit = (self.py >= 0)[:, None] & (self.px >= 0)[None, :]
        self._flat = np.clip(self.py, 0, None)[:, None] * width + np.clip(self.px, 0, None)[None, :]

    def lookup(self, photo_map: np.ndarray) -> np.ndarray:
        """A photo-sized map read at each grid pixel's representative photo pixel (0 where none)."""
        out = np.take(photo_map.reshape(-1), self._flat)
        out[~self.hit] = 0
        return out

    def to_photo(self, gx: int, gy: int) -> tuple[int, int]:
        return int(self.px[gx]), int(self.py[gy])


def _representative(mapped: np.ndarray, size: int) -> np.ndarray:
    """For each grid index, the middle photo index that maps onto it (-1 if none does); `mapped` is sorted."""
    out = np.full(size, -1, dtype=np.int64)
    values = np.unique(mapped)
    first = np.searchsorted(mapped, values, side="left")
    last = np.searchsorted(mapped, values, side="right") - 1
    out[values] = (first + last) // 2
    return out


def inside_distance(mask: np.ndarray) -> np.ndarray:
    """scipy's euclidean distance transform of `mask` (distance of object pixels to the nearest
    background pixel), computed on the object's bounding box only (identical result, less work)."""
    out = np.zeros(mask.shape, np.float64)
    ys, xs = np.nonzero(mask)
    if len(ys):
        box = (slice(max(0, ys.min() - 1), ys.max() + 2), slice(max(0, xs.min() - 1), xs.max() + 2))
        out[box] = ndimage.distance_transform_edt(mask[box])
    return out


def outside_distance(mask: np.ndarray, cap: int) -> np.ndarray:
    """Distance of background pixels to the object, exact below `cap`, `cap` beyond (bounding box + cap)."""
    out = np.full(mask.shape, float(cap))
    ys, xs = np.nonzero(mask)
    if len(ys):
        box = (slice(max(0, ys.min() - cap), ys.max() + cap + 1), slice(max(0, xs.min() - cap), xs.max() + cap + 1))
        out[box] = np.minimum(ndimage.distance_transform_edt(~mask[box]), cap)
    return out


def object_mask_512(mask: np.ndarray) -> np.ndarray:
    """The photo's bool object mask on the 512 grid (bilinear as float, >= 0.5)."""
    return resize_prob(mask.astype(np.float32), SIZE, SIZE) >= 0.5


def render_prev_mask(mask512: np.ndarray, recipe: PrevMaskRecipe | None) -> np.ndarray:
    """The synthesized previous output (float32 512x512, 0..1) for a recipe; zeros for None."""
    if recipe is None:
        return np.zeros((SIZE, SIZE), np.float32)
    if recipe.op == "dilate":
        binary = outside_distance(mask512, recipe.radius + 2) <= recipe.radius
    elif recipe.op == "erode":
        binary = inside_distance(mask512) > recipe.radius
    elif recipe.op == "shift":
        binary = ndimage.shift(mask512.astype(np.uint8), (recipe.dy, recipe.dx), order=0, mode="constant") > 0
    else:
        raise InputError(f"calibration manifest: unknown prev-mask op {recipe.op!r} (dilate, erode, shift)")
    prob = ndimage.gaussian_filter(binary.astype(np.float32), recipe.sigma, mode="constant")
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def draw_recipe(rng: np.random.Generator, mask512: np.ndarray, seed: int) -> PrevMaskRecipe:
    """A plausible previous-output recipe; erosion that would lose most of a thin object becomes dilation."""
    op = str(rng.choice(["dilate", "erode", "shift"]))
    radius = int(rng.integers(4, 13))
    sigma = round(float(rng.uniform(1.0, 3.0)), 3)
    angle = float(rng.uniform(0, 2 * np.pi))
    dx, dy = int(round(radius * np.cos(angle))), int(round(radius * np.sin(angle)))
    if op == "erode" and (inside_distance(mask512) > radius).sum() < 0.3 * mask512.sum():
        op = "dilate"
    return PrevMaskRecipe(seed=seed, op=op, radius=radius, dx=dx if op == "shift" else 0,
                          dy=dy if op == "shift" else 0, sigma=sigma)


def _pick(rng: np.random.Generator, allowed: np.ndarray, border: np.ndarray,
          center: np.ndarray | None = None) -> tuple[int, int] | None:
    """A grid pixel (x, y) among `allowed`: >= margin from the border when any is, else the farthest;
    with `center` (distance inside an error region), among the more central half of those."""
    if not allowed.any():
        return None
    score = np.where(allowed, border, -1.0)
    cand = allowed & (score >= CLICK_MARGIN_PX)
    if not cand.any():
        cand = score >= score.max()
    if center is not None:
        c = np.where(cand, center, 0.0)
        cand = cand & (c >= 0.5 * c.max())
    ys, xs = np.nonzero(cand)
    i = int(rng.integers(len(ys)))
    return int(xs[i]), int(ys[i])


class ClickPlanner:
    """Click candidates of one photo object: inside/outside scores on the grid, in photo and grid terms."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample
        h, w = sample.shape
        self.grid = Grid(w, h)
        self.mask512 = object_mask_512(sample.mask)
        if not self.mask512.any():
            raise InputError(f"{sample.name}: the object vanishes when resized to {SIZE}x{SIZE}")
        ignore512 = resize_prob(sample.ignore.astype(np.float32), SIZE, SIZE) > 0
        photo_in = self.grid.lookup(sample.mask)
        photo_ign = self.grid.lookup(sample.ignore)
        usable = self.grid.hit & ~ignore512 & ~photo_ign
        self.inside = usable & self.mask512 & photo_in
        self.outside = usable & ~self.mask512 & ~photo_in
        in_photo = self.grid.lookup(inside_distance(sample.mask))
        self.in_score = np.minimum(inside_distance(self.mask512), in_photo)

    @functools.cached_property
    def out_dist(self) -> np.ndarray:
        return outside_distance(self.mask512, 2 * BACKGROUND_BAND[1])

    @functools.cached_property
    def out_score(self) -> np.ndarray:
        """Distance to the object for background pixels (min of photo and grid terms); only follow-ups need it."""
        out_photo = self.grid.lookup(outside_distance(self.sample.mask, 2 * BACKGROUND_BAND[1]))
        return np.minimum(self.out_dist, out_photo)

    def first_click(self, rng: np.random.Generator) -> tuple[int, int]:
        xy = _pick(rng, self.inside, self.in_score)
        if xy is None:
            raise InputError("no clickable object pixel (object entirely on ignore pixels)")
        return xy

    def follow_ups(self, rng: np.random.Generator, prev: np.ndarray, n: int,
                   first: tuple[int, int]) -> list[tuple[int, int, int]]:
        """Up to n corrective clicks (grid x, y, label) for a previous output `prev`."""
        pred = prev >= PROB_THRESHOLD
        missed = self.inside & ~pred
        extra = self.outside & pred
        near = self.outside & (self.out_dist <= BACKGROUND_BAND[1])
        yy, xx = np.ogrid[: pred.shape[0], : pred.shape[1]]
        free = (xx - first[0]) ** 2 + (yy - first[1]) ** 2 > FIX_RADIUS**2
        out: list[tuple[int, int, int]] = []
        for _ in range(n):
            fn, fp = missed & free, extra & free
            a_fn, a_fp = int(fn.sum()), int(fp.sum())
            if a_fn + a_fp:
                positive = bool(rng.random() < a_fn / (a_fn + a_fp))
                region = fn if positive else fp
                center = inside_distance(np.pad(region, 1))[1:-1, 1:-1]
                xy = _pick(rng, region, self.in_score if positive else self.out_score, center)
            else:
                positive = False
                xy = _pick(rng, near & free, self.out_score)
            if xy is None:
                break
            out.append((xy[0], xy[1], 1 if positive else 0))
            free &= (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 > FIX_RADIUS**2
        return out


def plan_clicks(sample: Sample, rng: np.random.Generator, follow_up: bool,
                seed: int) -> tuple[list[tuple[int, int, int]], PrevMaskRecipe | None]:
    """Clicks (photo x, y, label) and the prev-mask recipe (None for a single-click sample)."""
    planner = ClickPlanner(sample)
    first = planner.first_click(rng)
    grid_clicks = [(first[0], first[1], 1)]
    recipe = None
    if follow_up:
        recipe = draw_recipe(rng, planner.mask512, seed)
        prev = render_prev_mask(planner.mask512, recipe)
        grid_clicks += planner.follow_ups(rng, prev, int(rng.integers(1, 4)), first)
    return [(*planner.grid.to_photo(gx, gy), label) for gx, gy, label in grid_clicks], recipe


def render(sample: Sample, name: str, clicks: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...],
           recipe: PrevMaskRecipe | None) -> CalibrationSample:
    """The network arrays of one sample: image, packed clicks, prev mask, object mask (all at 512)."""
    h, w = sample.shape
    for x, y, _ in clicks:
        if not (0 <= x < w and 0 <= y < h):
            raise InputError(f"{name}: click ({x}, {y}) is outside the {w}x{h} photo (manifest and photo differ)")
    net = [(*to_network_xy(x, y, w, h, SIZE), label == 1) for x, y, label in clicks]
    packed = pack_clicks(net, MAX_CLICKS)
    check_clicks(packed, SIZE)
    mask512 = object_mask_512(sample.mask)
    prev = render_prev_mask(mask512, recipe)
    return CalibrationSample(
        name=name,
        image=np.ascontiguousarray(resize_image(sample.image, SIZE), dtype=np.uint8),
        clicks=packed[0],
        prev_mask=prev[:, :, None],
        mask=mask512,
    )
