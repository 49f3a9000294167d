"""Corrective taps: click obedience, zoom-in crop and paste-back, and the clicked-disk loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oace.model.backends import BundleContract, TorchBackend
from oace.model.clicks import Click
from oace.model.data.base import Sample
from oace.model.evaluate import EvalConfig, Session, evaluate_dataset, obedience, run_protocol
from oace.model.losses import click_region_loss, normalized_focal_loss
from oace.model.registry import build_model
from oace.model.train_clicks import robot_obedience
from oace.model.zoom_in import ZoomIn, crop_clicks, object_box, paste

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- obedience on hand-built cases


def _square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


class ObedientModel:
    """Predicts the object box plus a false-positive blob until a negative click lands on the blob,
    and the object's left half until a positive click lands on its right half."""

    def __init__(self, gt: np.ndarray, blob: np.ndarray, honours_negatives: bool):
        self.gt, self.blob, self.honours = gt, blob, honours_negatives

    def __call__(self, clicks):
        pred = self.gt.copy()
        pred[:, pred.shape[1] // 2:] &= any(c.is_positive and c.x >= 30 for c in clicks[1:])
        if not (self.honours and any(not c.is_positive and self.blob[c.y, c.x] for c in clicks)):
            pred |= self.blob
        return pred.astype(np.float32)


@pytest.mark.parametrize("honours", [True, False])
def test_obedience_counts_each_follow_up_click_by_its_label(honours):
    gt = _square(60, 60, 10, 50, 10, 50)
    blob = _square(60, 60, 52, 60, 0, 60)  # a false-positive strip below the object
    run = run_protocol(gt, None, ObedientModel(gt, blob, honours), max_clicks=4)
    labels = [c.is_positive for c in run.clicks]
    assert labels[0] and any(not v for v in labels[1:]) and any(labels[1:])
    from oace.model.evaluate import SampleResult

    stats = obedience([SampleResult("s", run.ious, run.clicks, 0.0, run.obeyed)])
    assert stats["obey_pos"] == 100.0
    assert stats["obey_neg"] == (100.0 if honours else 0.0)
    n_neg = sum(not v for v in labels[1:])
    assert stats["obey_neg_clicks"] == n_neg and stats["obey_pos_clicks"] == len(labels) - 1 - n_neg


def test_obedience_without_follow_up_clicks_is_none():
    from oace.model.evaluate import SampleResult

    stats = obedience([SampleResult("s", [0.5], [Click(1, 1, True)], 0.0, [True])])
    assert stats == {"obey_pos": None, "obey_pos_clicks": 0, "obey_neg": None, "obey_neg_clicks": 0}


def _synthetic_samples(n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        mask = _square(96, 128, 20 + i, 70, 30, 90 - i)
        out.append(Sample(image=image, mask=mask, ignore=np.zeros_like(mask), name=f"s{i}"))
    return out


def test_a_network_whose_map_branch_is_zeroed_obeys_no_negative_click():
    seg = build_model("segmenter_tiny", seed=0).eval()
    with torch.no_grad():
        seg.msfnet.maps_block[-1].scale.zero_()  # follow-up clicks and the previous mask reach nothing:
        seg.msfnet.refiner.correction.weight.zero_()  # neither the stem branch nor the click refiner
        seg.msfnet.refiner.correction.bias.zero_()
        seg.msfnet.head.classify.bias.fill_(20.0)  # everything predicted: every robot follow-up is negative
    run = evaluate_dataset(_synthetic_samples(3), TorchBackend(seg), EvalConfig(max_clicks=4, progress=False))
    assert run.metrics["obey_neg_clicks"] == 9 and run.metrics["obey_pos_clicks"] == 0
    assert run.metrics["obey_neg"] == 0.0


def test_training_validation_scores_obedience_per_label():
    gt = torch.from_numpy(_square(40, 40, 10, 30, 10, 30)).float()[None, None].repeat(2, 1, 1, 1)
    clicks = torch.full((2, 6, 3), -1, dtype=torch.int32)
    clicks[:, 0] = torch.tensor([20, 20, 1], dtype=torch.int32)

    def everything(c, prev):  # the whole image, whatever the clicks: negatives are never obeyed
        return torch.ones_like(gt)

    out = robot_obedience(everything, clicks, gt, torch.zeros_like(gt), rounds=2)
    assert out["val_obey_neg"] == [0.0] * 4 and out["val_obey_pos"] == []
    assert out["val_miou_robot"] == pytest.approx([400 / 1600] * 2)  # a 20x20 object in a 40x40 image

    def obeys(c, prev):  # the object, minus nothing: perfect after any click, so the robot stops
        return gt.clone()

    assert robot_obedience(obeys, clicks, gt, torch.zeros_like(gt), rounds=2) == {
        "val_obey_pos": [], "val_obey_neg": [], "val_miou_robot": [1.0, 1.0]}


# ---------------------------------------------------------------- zoom-in


def test_object_box_grows_about_the_centre_and_is_clamped():
    mask = _square(300, 400, 100, 140, 200, 260)  # 40 x 60 box
    assert object_box(mask, [], 1.4, 10) == (92, 148, 188, 272)  # 56 x 84 about the same centre
    assert object_box(mask, [], 1.4, 200) == (20, 220, 130, 330)  # min crop 200 a side
    assert object_box(mask, [(395, 5)], 1.0, 1) == (5, 140, 200, 396)  # a positive click extends it
    corner = _square(300, 400, 0, 10, 0, 10)
    assert object_box(corner, [], 1.4, 200) == (0, 200, 0, 200)  # shifted inside, not shrunk
    assert object_box(np.zeros((30, 50), bool), [], 1.4, 200) == (0, 30, 0, 50)  # nothing yet: the whole image


def test_crop_clicks_and_paste_are_exact():
    box = (10, 20, 30, 45)
    assert crop_clicks([(31, 11, True), (5, 5, False), (44, 19, False)], box) == [(1, 1, True), (14, 9, False)]
    crop = np.arange(150, dtype=np.float32).reshape(10, 15)
    full = paste(crop, box, (40, 60))
    assert full.shape == (40, 60) and np.array_equal(full[10:20, 30:45], crop)
    assert full.sum() == crop.sum()  # zero outside the box
    with pytest.raises(ValueError):
        paste(crop, (0, 5, 0, 5), (40, 60))


class RedChannel:
    """A backend whose probabilities are the red channel / 255 of the image it is given."""

    name = "red"
    contract = BundleContract(512, 24, 0.49)

    def __init__(self):
        self.calls = []

    def predict(self, image, clicks, prev_mask):
        self.calls.append((image.shape, list(clicks), prev_mask.copy()))
        return image[..., 0].astype(np.float32) / 255.0


def test_zoomed_session_crops_runs_and_pastes_back_exactly():
    h, w = 800, 1000
    gt = _square(h, w, 300, 420, 400, 560)
    photo = np.zeros((h, w, 3), dtype=np.uint8)
    photo[..., 0] = gt * 255
    backend = RedChannel()
    session = Session(backend, photo, zoom_in=ZoomIn(min_crop=512))
    first = session([Click(480, 360, True)])  # whole photo, resized to 512
    assert backend.calls[0][0] == (512, 512, 3)
    clicks = [Click(480, 360, True), Click(10, 10, False), Click(550, 410, True)]
    out = session(clicks)
    box = object_box(first > 0.49, [(480, 360), (550, 410)], 1.4, 512)
    y0, y1, x0, x1 = box
    assert (y1 - y0, x1 - x0) == (512, 512)  # so the crop goes through the network unresized
    assert np.array_equal(out[y0:y1, x0:x1], gt[y0:y1, x0:x1].astype(np.float32))
    assert not out[:y0].any() and not out[y1:].any() and not out[:, :x0].any() and not out[:, x1:].any()
    shape, rows, prev = backend.calls[1]
    assert rows == [(480 - x0, 360 - y0, 1), (550 - x0, 410 - y0, 1)]  # the negative click outside is dropped
    assert np.allclose(prev, first[y0:y1, x0:x1], atol=1e-6)  # the previous mask, cropped the same way


def test_zoom_in_leaves_the_first_click_alone():
    photo = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    a, b = RedChannel(), RedChannel()
    plain = Session(a, photo)([Click(5, 5, True)])
    zoomed = Session(b, photo, zoom_in=ZoomIn())([Click(5, 5, True)])
    assert np.array_equal(plain, zoomed)


# ---------------------------------------------------------------- the clicked-disk loss


def test_click_region_loss_is_the_cross_entropy_on_the_disks():
    logits = torch.tensor([[0.0, 2.0, -1.0, 3.0]]).view(1, 1, 1, 4)
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0]]).view(1, 1, 1, 4)
    region = torch.tensor([[1.0, 1.0, 0.0, 0.0]]).view(1, 1, 1, 4)
    want = (math.log(2.0) + (2.0 + math.log1p(math.exp(-2.0)))) / 2  # -log sigmoid(0), -log(1 - sigmoid(2))
    assert click_region_loss(logits, target, region).item() == pytest.approx(want, abs=1e-6)
    ignore = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).view(1, 1, 1, 4)
    assert click_region_loss(logits, target, region, ignore).item() == pytest.approx(math.log(2.0), abs=1e-6)
    empty = click_region_loss(logits, target, torch.zeros_like(region))
    assert empty.item() == 0.0


def test_a_disobeyed_negative_click_costs_little_in_nfl_and_a_lot_in_the_click_term():
    """A confident, correct 200x200 prediction except an ignored negative click: the NFL hardly
    notices (its weight spreads over every uncertain pixel), the click term does."""
    yy, xx = np.mgrid[0:200, 0:200]
    target = torch.from_numpy(((yy - 100) ** 2 + (xx - 100) ** 2 <= 60 ** 2).astype(np.float32))[None, None]
    disk = torch.from_numpy(((yy - 100) ** 2 + (xx - 175) ** 2 <= 25).astype(np.float32))[None, None]
    logits = (target * 2 - 1) * 0.5  # unconfident everywhere, but on the right side of 0.5
    disobeyed = logits + disk * 1.0  # the negative click's disk predicted as object
    nfl_change = normalized_focal_loss(disobeyed, target) - normalized_focal_loss(logits, target)
    click_change = click_region_loss(disobeyed, target, disk) - click_region_loss(logits, target, disk)
    assert click_change.item() == pytest.approx(0.5, abs=1e-5)  # softplus(0.5) - softplus(-0.5), on every disk pixel
    assert 0 < nfl_change.item() < click_change.item() / 50
