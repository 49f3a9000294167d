"""Training data: specs (evaluation sets refused), the split, and seeded per-item augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oace.model.data import Sample
from oace.model.segmenter import IMAGENET_MEAN, IMAGENET_STD
from oace.model.train_data import TrainSet, TrainSetConfig, brightness_contrast, parse_specs, resize_sample, split_indices
from oace.model.train_clicks import ClickSimConfig
from oace.errors import InputError


def _samples(n: int = 6, size: int = 48) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 256, (size, size + 16, 3), dtype=np.uint8)
        mask = np.zeros((size, size + 16), dtype=bool)
        mask[10:30, 5 + i : 25 + i] = True
        out.append(Sample(image, mask, np.zeros_like(mask), f"s{i}"))
    return out


@pytest.mark.parametrize("spec", ["GrabCut:../shared/data", "davis:/x", "sbd:/x", "coco_mval:/x", "Berkeley:/x"])
def test_evaluation_sets_are_refused_by_kind(spec):
    with pytest.raises(InputError, match="is an evaluation set"):
        parse_specs(spec)


def test_evaluation_sets_are_refused_by_folder(tmp_path):
    with pytest.raises(InputError, match="folder 'COCO_MVal' is an evaluation set"):
        parse_specs(f"salient:{tmp_path}/COCO_MVal")
    with pytest.raises(InputError, match="unknown kind 'nope'"):
        parse_specs("nope:/x")
    with pytest.raises(InputError, match="expected kind:path"):
        parse_specs("salient")
    specs = parse_specs("salient:/a/ECSSD, yolo_seg:/b/coco128-seg")
    assert [(s.kind, s.path) for s in specs] == [("salient", "/a/ECSSD"), ("yolo_seg", "/b/coco128-seg")]


def test_split_is_seeded_disjoint_and_limited():
    train, val = split_indices(100, 0.05, seed=3)
    assert len(val) == 5 and len(train) == 95 and not set(train) & set(val)
    assert (train, val) == split_indices(100, 0.05, seed=3)
    assert split_indices(100, 0.05, seed=4) != (train, val)
    train, val = split_indices(100, 0.25, seed=0, limit=8)
    assert len(train) == 6 and len(val) == 2
    with pytest.raises(InputError, match="nothing left to train on"):
        split_indices(1, 0.5, seed=0)


def test_resize_keeps_thin_objects_and_is_not_a_crop():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    mask = np.zeros((100, 200), dtype=bool)
    mask[50, 10:190] = True  # one row: bilinear to 32 rows would drop below 0.5
    img, m, ig, _ = resize_sample(Sample(image, mask, np.zeros_like(mask), "thin"), 32)
    assert img.shape == (32, 32, 3) and m.any() and not ig.any()
    assert m[:, 3:29].any(axis=0).all() and not m[:, 0].any()  # spans the width: resized, not cropped


def test_brightness_contrast_is_ritms_formula():
    rng = np.random.default_rng(0)
    ref = np.random.default_rng(0)
    img = np.full((2, 2, 3), 100, dtype=np.uint8)
    out = brightness_contrast(img, rng)
    assert ref.random() < 0.75
    b, c = ref.uniform(-0.25, 0.25), ref.uniform(-0.15, 0.4)
    assert out[0, 0, 0] == pytest.approx(np.clip(100 * (1 + c) + 255 * b, 0, 255), abs=1e-4)


def test_items_are_seeded_per_epoch_and_flip_image_and_mask_together():
    samples = _samples()
    ds = TrainSet([samples], list(range(6)), TrainSetConfig(size=32, clicks=ClickSimConfig(), seed=0, train=True, multi_click=True))
    a = ds[2]
    assert all(torch.equal(a[k], ds[2][k]) for k in a)  # same epoch: identical
    ds.set_epoch(1)
    b = ds[2]
    assert not torch.equal(a["seed"], b["seed"])
    assert a["image"].shape == (3, 32, 32) and a["mask"].shape == (1, 32, 32) and a["clicks"].dtype == torch.int32
    # image and mask flip together: the object's columns in the mask match the unflipped or mirrored layout
    ref = torch.from_numpy(resize_sample(samples[2], 32)[1]).float()
    flips = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[2]
        flipped = torch.equal(item["mask"][0], ref.flip(1))
        assert flipped or torch.equal(item["mask"][0], ref)
        x, y = item["clicks"][0, :2].tolist()
        assert item["mask"][0, y, x] == 1.0  # the first click is on the (possibly flipped) object
        flips.append(flipped)
    assert any(flips) and not all(flips)


def test_validation_items_are_plain_and_clicked_at_the_interior_point():
    samples = _samples()
    ds = TrainSet([samples], [0, 1], TrainSetConfig(size=32, clicks=ClickSimConfig(), seed=0, train=False, multi_click=False))
    item = ds[0]
    img, mask, _, _ = resize_sample(samples[0], 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    expected = (torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 - mean) / std
    assert torch.allclose(item["image"], expected, atol=1e-6)
    from oace.model.train_clicks import interior_point

    assert tuple(item["clicks"][0, :2].tolist()) == interior_point(mask) and int(item["iterations"]) == 0


def test_crops_keep_pixel_scale_hold_the_object_and_vary_by_epoch():
    samples = _samples()
    full = resize_sample(samples[3], 64)
    ds = TrainSet([samples], list(range(6)),
                  TrainSetConfig(size=64, clicks=ClickSimConfig(), seed=0, train=True, multi_click=False, crop=32))
    origins = set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        item = ds[3]
        assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
        mask = item["mask"][0].numpy() > 0.5
        assert mask.any()  # the window holds part of the object
        x, y = item["clicks"][0, :2].tolist()
        assert mask[y, x]  # and the first click is on it, in the crop's coordinates
        # the crop is a window of the full-size mask (possibly mirrored): find where it sits
        found = [(x0, y0, f) for f in (False, True) for y0 in range(33) for x0 in range(33)
                 if np.array_equal(full[1][y0:y0 + 32, x0:x0 + 32], mask[:, ::-1] if f else mask)]
        assert found, "a crop is an unscaled window of the resized image"
        origins.add(found[0][:2])
    assert len(origins) > 2
    # validation items are never cropped
    val = TrainSet([samples], [3], TrainSetConfig(size=64, clicks=ClickSimConfig(), seed=0, train=False, multi_click=False, crop=32))
    assert val[0]["image"].shape == (3, 64, 64)


def test_random_crop_never_cuts_the_object_away():
    from oace.model.train_data import random_crop

    rng = np.random.default_rng(1)
    mask = np.zeros((96, 96), bool)
    mask[90:, 0:3] = True  # a sliver in a corner
    image = np.zeros((96, 96, 3), np.uint8)
    for _ in range(50):
        im, m, ig = random_crop(image, mask, np.zeros_like(mask), 32, rng)
        assert m.shape == (32, 32) and im.shape == (32, 32, 3) and m.any()
