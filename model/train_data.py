"""Training data: `kind:path` specs, the train/validation split, resizing, augmentation, first clicks.

Every item is one object (the loaders already yield one Sample per object). Images are resized to
size x size (bilinear; masks bilinear then >= 0.5, so thin objects keep at least their strongest
pixel); training items may then be cut to a random crop x crop window holding part of the object. Training items get a horizontal flip (p 0.5) and RITM's brightness/contrast
shift (p 0.75, brightness +-0.25, contrast -0.15..0.4); validation items get none and their click
is the interior point farthest from the border. All randomness of an item comes from
`np.random.default_rng([seed, epoch, index])`, so an item is the same whichever rank, worker or
resumed run draws it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from oace.model.click_metrics import MultiObjectSample, heldout_composites
from oace.model.composite import CompositeConfig, paste_objects, pick_target
from oace.model.data import DATASETS, Sample, SegDataset, get_dataset
from oace.model.data.salient import SalientDataset
from oace.model.segmenter import IMAGENET_MEAN, IMAGENET_STD
from oace.model.train_clicks import ClickSimConfig, empty_clicks, initial_clicks, interior_point
from oace.model.click_maps import POSITIVE
from oace.errors import InputError
from oace.evaluation_sets import EVAL_SETS, is_evaluation_set, refuse_evaluation_set



@dataclasses.dataclass(frozen=True)
class DataSpec:
    kind: str
    path: str


def parse_specs(text: str) -> list[DataSpec]:
    """'kind:path[,kind:path]' -> specs; evaluation sets are refused (InputError)."""
    specs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, sep, path = part.partition(":")
        if not sep or not kind or not path:
            raise InputError(f"--data {part!r}: expected kind:path, e.g. salient:../shared/data-train/ECSSD")
        key = kind.lower().replace("-", "_")
        if is_evaluation_set(kind):
            refuse_evaluation_set(path, kind, "training")
        if key not in DATASETS and kind.lower() != "coco128-seg":
            trainable = sorted(k for k in DATASETS if k not in EVAL_SETS)
            raise InputError(f"--data {part!r}: unknown kind {kind!r}; known: {', '.join(trainable)}")
        refuse_evaluation_set(path, None, "training")
        specs.append(DataSpec(kind, path))
    if not specs:
        raise InputError("--data: no dataset given")
    return specs


def open_datasets(specs: Sequence[DataSpec]) -> list[SegDataset]:
    return [get_dataset(s.kind, s.path) for s in specs]


def split_indices(total: int, val_fraction: float, seed: int, limit: int | None = None) -> tuple[list[int], list[int]]:
    """Seeded shuffle of 0..total-1 (first `limit` kept), then the first val_fraction for validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(total).tolist()
    if limit is not None:
        order = order[:limit]
    n_val = max(1, round(val_fraction * len(order))) if val_fraction > 0 else 0
    if len(order) - n_val < 1:
        raise InputError(f"only {len(order)} object(s) in the training data: nothing left to train on after the validation split")
    return order[n_val:], order[:n_val]


def resize_sample(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> image uint8 [S, S, 3], mask, ignore, others: bool [S, S] (no crop; others empty when unknown)."""
    image = np.asarray(Image.fromarray(sample.image).resize((size, size), Image.BILINEAR))
    mask = _resize_bool(sample.mask, size)
    if not mask.any():
        raise InputError(f"{sample.name}: the object mask is empty")
    ignore = _resize_bool(sample.ignore, size) & ~mask
    others = _resize_bool(sample.others, size) & ~mask & ~ignore if sample.others is not None else np.zeros_like(mask)
    return image, mask, ignore, others


def random_crop(
    image: np.ndarray, mask: np.ndarray, ignore: np.ndarray, crop: int, rng: np.random.Generator, *extra: np.ndarray
) -> tuple[np.ndarray, ...]:
    """A crop x crop window that holds a uniformly drawn object pixel (so the object is never cut
    away), placed uniformly among the windows that do. Pixel scale is unchanged: a model trained on
    crops of the size x size image sees objects as large as it will at inference, for a fraction
    of the compute (RITM trains on crops the same way)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    k = int(rng.integers(len(ys)))
    y0 = int(rng.integers(max(0, ys[k] - crop + 1), min(ys[k], h - crop) + 1))
    x0 = int(rng.integers(max(0, xs[k] - crop + 1), min(xs[k], w - crop) + 1))
    win = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    return tuple(a[win] for a in (image, mask, ignore, *extra))


def _resize_bool(m: np.ndarray, size: int) -> np.ndarray:
    if not m.any():
        return np.zeros((size, size), dtype=bool)
    soft = np.asarray(Image.fromarray(m.astype(np.float32)).resize((size, size), Image.BILINEAR))
    out = soft >= 0.5
    if not out.any():  # an object thinner than a pixel at this size: keep its strongest pixel(s)
        out = soft >= soft.max() - 1e-6
    return out


def brightness_contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RITM's RandomBrightnessContrast: image * (1 + c) + 255 * b, p 0.75; float 0..255 out."""
    img = image.astype(np.float32)
    if rng.random() < 0.75:
        b = rng.uniform(-0.25, 0.25)
        c = rng.uniform(-0.15, 0.4)
        img = np.clip(img * (1.0 + c) + 255.0 * b, 0.0, 255.0)
    return img


def normalize(image: np.ndarray) -> torch.Tensor:
    """float/uint8 [S, S, 3] 0..255 -> ImageNet-normalized float [3, S, S]."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1) / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSetConfig:
    """How a TrainSet makes its items: side `size`, click simulation, the seed of every item's draw;
    `train` items are augmented (and, with `multi_click`, get several clicks), validation items not.
    `crop` and `composite` apply to training items only."""

    size: int
    clicks: ClickSimConfig
    seed: int
    train: bool
    multi_click: bool
    crop: int | None = None
    composite: CompositeConfig | None = None


class TrainSet(torch.utils.data.Dataset):
    """Objects of several datasets, resized and augmented; see the module docstring.

    Items: {"image": float [3, S, S], "mask", "ignore", "others": float [1, S, S], "clicks": int32 [N, 3],
    "iterations": int64 (iterative clicks to simulate), "seed": int64 (patch sampling)}. `others` holds
    the image's other objects (background here; hard negatives for the prior), zeros when unknown.
    With `composite` (training only), that share of items become copy-paste composites
    (model/composite.py) whose pasted objects come from the salient datasets' items of this set.
    """

    def __init__(self, datasets: Sequence[SegDataset], indices: Sequence[int], cfg: TrainSetConfig) -> None:
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        self.indices = list(indices)
        self.size, self.clicks, self.seed = cfg.size, cfg.clicks, cfg.seed
        self.train, self.multi_click = cfg.train, cfg.multi_click
        self.crop = cfg.crop if cfg.train and cfg.crop and cfg.crop < cfg.size else None
        self.composite = cfg.composite if cfg.train and cfg.composite and cfg.composite.prob > 0 else None
        salient = [i for i in range(len(self.indices)) if isinstance(self.datasets[self._dataset_of(i)], SalientDataset)]
        self.donors = salient or list(range(len(self.indices)))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def _dataset_of(self, i: int) -> int:
        return int(np.searchsorted(self.offsets, self.indices[i], side="right") - 1)

    def sample(self, i: int) -> Sample:
        g = self.indices[i]
        d = self._dataset_of(i)
        return self.datasets[d][g - int(self.offsets[d])]

    def composed(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """(image, mask, ignore, others) of item i, or of a composite on it (training, with p composite.prob)."""
        parts = resize_sample(self.sample(i), self.size)
        cfg = self.composite
        if cfg is None or rng.random() >= cfg.prob:
            return parts
        image, mask, ignore, others = parts
        picks = rng.choice(self.donors, size=int(rng.integers(1, cfg.max_objects + 1)))
        donors = [(s.image, s.mask) for s in (self.sample(int(k)) for k in picks)]
        comp = paste_objects(image, mask | others, donors, rng, cfg.scale)
        chosen = pick_target(comp, rng, cfg.min_visible)
        if chosen is None:  # every pasted object ended up too small: keep the plain item
            return parts
        pasted = np.logical_or.reduce(comp.objects)
        target, rest = chosen
        return comp.image, target, ignore & ~pasted, rest & ~(ignore & ~pasted)

    def heldout_composites(self, n: int) -> list[MultiObjectSample]:
        """n seeded multi-object samples made of this set's objects only (held out when this is the
        validation set): canvases are every item with its other objects, donors the salient items
        (all items when fewer than 3). Empty when n < 1 or the set has fewer than 2 items."""
        if n < 1 or len(self) < 2:
            return []
        samples = [self.sample(i) for i in range(len(self))]
        canvases = [(s.image, s.mask | (s.others if s.others is not None else False)) for s in samples]
        donors = [(samples[i].image, samples[i].mask) for i in self.donors]
        if len(donors) < 3:
            donors = [(s.image, s.mask) for s in samples]
        return heldout_composites(canvases, donors, n, self.seed, self.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = self.indices[i]
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, g])
        image, mask, ignore, others = self.composed(i, rng) if self.train else resize_sample(self.sample(i), self.size)
        if self.train:
            if self.crop:
                image, mask, ignore, others = random_crop(image, mask, ignore, self.crop, rng, others)
            if rng.random() < 0.5:
                image, mask, ignore, others = image[:, ::-1], mask[:, ::-1], ignore[:, ::-1], others[:, ::-1]
            image = brightness_contrast(image, rng)
            clicks, iterations = initial_clicks(mask, ignore, rng, self.clicks, self.multi_click)
        else:
            clicks, iterations = empty_clicks(self.clicks.max_clicks), 0
            x, y = interior_point(mask)
            clicks[0] = (x, y, POSITIVE)
        return {
            "image": normalize(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            "ignore": torch.from_numpy(np.ascontiguousarray(ignore, dtype=np.float32))[None],
            "others": torch.from_numpy(np.ascontiguousarray(others, dtype=np.float32))[None],
            "clicks": torch.from_numpy(clicks),
            "iterations": torch.tensor(iterations, dtype=torch.int64),
            "seed": torch.tensor(int(rng.integers(2**62)), dtype=torch.int64),
        }
