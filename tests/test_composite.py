"""Multi-object training samples: copy-paste composites and hard-negative patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_salient_set
from oace.model.composite import CompositeConfig, paste_objects, pick_target
from oace.model.losses import PatchSampling, hard_negative_region, sample_patches
from oace.model.train_clicks import ClickSimConfig
from oace.model.train_data import TrainSet, TrainSetConfig, open_datasets, parse_specs


def _donor(color: tuple[int, int, int], h: int = 40, w: int = 30) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((h + 10, w + 10, 3), dtype=np.uint8)
    mask = np.zeros((h + 10, w + 10), dtype=bool)
    mask[5:5 + h, 5:5 + w] = True
    image[mask] = color
    return image, mask


def test_paste_objects_occludes_in_order_and_keeps_donor_pixels():
    canvas = np.full((128, 128, 3), 7, dtype=np.uint8)
    canvas_obj = np.zeros((128, 128), dtype=bool)
    canvas_obj[:20, :20] = True
    donors = [_donor((200, 0, 0)), _donor((0, 200, 0)), _donor((0, 0, 200))]
    comp = paste_objects(canvas, canvas_obj, donors, np.random.default_rng(3), scale=(0.3, 0.5))
    assert len(comp.objects) == 3
    for k, obj in enumerate(comp.objects):
        assert obj.any()
        assert (comp.image[obj] == donors[k][0][donors[k][1]][0]).all()  # visible pixels are the donor's colour
        for later in comp.objects[k + 1:]:
            assert not (obj & later).any()  # visible parts never overlap
    covered = np.logical_or.reduce(comp.objects)
    assert (comp.background_objects == canvas_obj & ~covered).all()
    assert (comp.image[~covered] == 7).all()  # the canvas elsewhere is untouched


def test_pick_target_makes_the_rest_background():
    canvas_obj = np.zeros((64, 64), dtype=bool)
    canvas_obj[50:, 50:] = True
    comp = paste_objects(np.zeros((64, 64, 3), np.uint8), canvas_obj, [_donor((9, 9, 9)), _donor((8, 8, 8))],
                         np.random.default_rng(0), scale=(0.3, 0.3))
    picks = set()
    for seed in range(20):
        target, others = pick_target(comp, np.random.default_rng(seed), 0.0)
        k = next(i for i, m in enumerate(comp.objects) if (m == target).all())
        picks.add(k)
        assert not (target & others).any()
        assert (others == (comp.objects[1 - k] | comp.background_objects)).all()
    assert picks == {0, 1}  # either pasted object can be the target
    assert pick_target(comp, np.random.default_rng(0), 0.99) is None  # none covers 99 % of the canvas


@pytest.fixture(scope="module")
def salient_dir(tmp_path_factory) -> Path:
    """10 synthetic 96x96 images, one bright square each, ECSSD layout."""
    rng = np.random.default_rng(1)
    pairs = []
    for i in range(10):
        mask = np.zeros((96, 96), dtype=bool)
        y, x = rng.integers(10, 50, 2)
        mask[y:y + 30, x:x + 30] = True
        img = rng.integers(0, 60, (96, 96, 3)).astype(np.uint8)
        img[mask] = (200, 40 + 20 * i, 30)
        pairs.append((img, mask))
    return write_salient_set(tmp_path_factory.mktemp("synth") / "SYNTH", pairs)


def test_composite_training_items_have_several_objects_and_click_the_target(salient_dir):
    ds = open_datasets(parse_specs(f"salient:{salient_dir}"))
    train = TrainSet(ds, list(range(10)), TrainSetConfig(size=128, clicks=ClickSimConfig(), seed=0, train=True, multi_click=False,
                                                   composite=CompositeConfig(prob=1.0, scale=(0.3, 0.4))))
    plain = TrainSet(ds, list(range(10)), TrainSetConfig(size=128, clicks=ClickSimConfig(), seed=0, train=True, multi_click=False))
    several = 0
    for i in range(10):
        item = train[i]
        mask, others = item["mask"][0] > 0.5, item["others"][0] > 0.5
        assert mask.any() and not (mask & others).any()
        x, y, label = item["clicks"][0].tolist()
        assert label == 1 and mask[y, x]  # the click picks the target
        several += int(others.any())
        assert not plain[i]["others"].any()  # a salient item alone has no other labelled object
    assert several == 10  # the canvas's own object at least is background: >= 2 objects in every composite


def test_validation_items_are_never_composites(salient_dir):
    ds = open_datasets(parse_specs(f"salient:{salient_dir}"))
    val = TrainSet(ds, [0, 1], TrainSetConfig(size=128, clicks=ClickSimConfig(), seed=0, train=False, multi_click=False,
                                         composite=CompositeConfig(prob=1.0)))
    assert val.composite is None and not val[0]["others"].any()


# ---------------------------------------------------------------- hard negatives


def test_hard_negative_region_is_the_other_objects_and_a_ring():
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., 8:12, 8:12] = 1
    others = torch.zeros_like(mask)
    others[..., 0:2, 0:2] = 1
    region = hard_negative_region(mask, others, band=2)
    ring = region.clone()
    ring[..., 0:2, 0:2] = 0
    assert ring.sum() == 8 * 8 - 4 * 4 and ring[..., 6:14, 6:14].sum() == 48  # a 2-px ring, no more
    assert region[..., 0:2, 0:2].all() and not (region * mask).any()


def _features_marking(hard: torch.Tensor) -> torch.Tensor:
    return torch.cat([hard, torch.ones_like(hard)], dim=1)  # channel 0 says "this cell is hard"


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_hard_share_of_background_patches_comes_from_the_hard_region(share):
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :16, :] = 1  # object: the top quarter (cells of 8 px: 8 x 8 cells, 16 object)
    hard = torch.zeros_like(mask)
    hard[..., 16:24, :16] = 1  # 2 hard background cells
    feats = _features_marking(hard)
    for seed in range(5):
        (_, bg), = sample_patches(feats, feats, mask, torch.zeros_like(mask), [seed],
                                  PatchSampling(8, 8, contrast="paper", hard_share=share), hard=hard)
        assert bg.shape[0] == 8 and int((bg[:, 0] > 0.99).sum()) == 2  # both hard cells, always


def test_without_hard_share_background_patches_ignore_the_hard_region():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :16, :] = 1
    hard = torch.zeros_like(mask)
    hard[..., 16:24, :16] = 1
    feats = _features_marking(hard)
    counts = []
    for seed in range(40):
        (_, bg), = sample_patches(feats, feats, mask, torch.zeros_like(mask), [seed],
                                  PatchSampling(8, 8, contrast="paper", hard_share=0.0), hard=hard)
        counts.append(int((bg[:, 0] > 0.99).sum()))
    assert 0.2 < np.mean(counts) < 0.5  # 8 draws of 48 cells, 2 hard: 1/3 expected
