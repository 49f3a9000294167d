"""The three click metrics on hand-built masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from oace.model.backends import BundleContract, TorchBackend
from oace.model.click_metrics import click_target, containment, heldout_composites, multi_object_metrics
from oace.model.data.base import Sample
from oace.model.evaluate import click_containment, click_robustness


def _objects() -> list[np.ndarray]:
    a = np.zeros((40, 60), dtype=bool)
    a[5:20, 5:25] = True
    b = np.zeros_like(a)
    b[22:38, 30:58] = True
    return [a, b]


def test_a_click_blind_model_hits_one_target_of_two_and_contains_only_its_object():
    objects = _objects()

    def salient(x, y):  # always object b, wherever the click
        return objects[1].astype(np.float32)

    assert click_target(salient, objects) == [False, True]
    rng = np.random.default_rng(0)
    got = containment(salient, (40, 60), rng, 200)
    assert abs(np.mean(got) - objects[1].mean()) < 0.06  # clicks land on b with b's area share


def test_a_model_that_follows_the_click_scores_full_marks():
    objects = _objects()

    def follows(x, y):  # the labelled object under the click, else a 3x3 patch around it
        for o in objects:
            if o[y, x]:
                return o.astype(np.float32)
        out = np.zeros((40, 60), np.float32)
        out[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 1
        return out

    assert click_target(follows, objects) == [True, True]
    assert all(containment(follows, (40, 60), np.random.default_rng(1), 50))


def test_interior_spread_is_zero_for_a_click_blind_model_and_known_for_a_split_one():
    from oace.model.click_metrics import interior_spread

    obj = _objects()[0]
    assert interior_spread(lambda x, y: obj.astype(np.float32), obj, np.random.default_rng(0)) == 0.0
    left = obj.copy()
    left[:, 15:] = False  # clicks left of x = 15 give the left half (IoU 0.5), the others the whole object

    def halves(x, y):
        return (left if x < 15 else obj).astype(np.float32)

    spreads = [interior_spread(halves, obj, np.random.default_rng(s), trials=3) for s in range(30)]
    assert set(np.round(spreads, 4)) <= {0.0, round(float(np.std([0.5, 1, 1])), 4)}  # 0 or the std of {0.5, 1, 1} or {0.5, 0.5, 1}
    assert max(spreads) > 0.2


def test_click_target_needs_a_strictly_larger_overlap():
    objects = _objects()

    def both(x, y):  # both objects: a tie on area is not a hit for the smaller one's click
        return (objects[0] | objects[1]).astype(np.float32)

    assert click_target(both, objects) == [False, True]  # a: 300 px vs b: 448 px


def test_multi_object_metrics_aggregates_over_samples():
    rng = np.random.default_rng(0)
    canvases = [(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), np.zeros((64, 64), bool)) for _ in range(3)]
    donors = []
    for k in range(4):
        img = np.full((30, 30, 3), 40 * k, np.uint8)
        m = np.zeros((30, 30), bool)
        m[5:25, 5:25] = True
        donors.append((img, m))
    samples = heldout_composites(canvases, donors, 5, seed=0, size=128)
    assert len(samples) == 5 and all(len(s.objects) >= 2 for s in samples)
    for s in samples:  # objects are disjoint
        assert np.logical_and.reduce([o.sum() > 0 for o in s.objects])
        assert int(np.sum([o.astype(int) for o in s.objects], axis=0).max()) == 1

    def oracle_for(sample):
        def predict(x, y):
            return next((o.astype(np.float32) for o in sample.objects if o[y, x]), np.zeros((128, 128), np.float32))
        return predict

    lookup = {id(s.image): s for s in samples}
    m = multi_object_metrics(lambda image: oracle_for(lookup[id(image)]), samples, containment_trials=4)
    assert m["click_target_accuracy"] == 1.0 and m["click_target_clicks"] == sum(len(s.objects) for s in samples)
    assert m["containment_clicks"] == 20 and 0.0 <= m["containment"] <= 1.0


class Everything:
    """A backend predicting the whole image whatever the clicks (click-blind, contains every click)."""

    name = "everything"
    contract = BundleContract(512, 24, 0.49)

    def predict(self, image, clicks, prev_mask):
        return np.ones((512, 512), np.float32)


class CentreSquare:
    """A click-blind backend: always the central quarter of the image."""

    name = "centre"
    contract = BundleContract(512, 24, 0.49)

    def predict(self, image, clicks, prev_mask):
        out = np.zeros((512, 512), np.float32)
        out[128:384, 128:384] = 1
        return out


def _samples() -> list[Sample]:
    mask = np.zeros((100, 100), bool)
    mask[30:70, 30:70] = True
    return [Sample(np.zeros((100, 100, 3), np.uint8), mask, np.zeros_like(mask), f"s{i}") for i in range(4)]


def test_eval_containment_and_interior_spread_of_click_blind_backends():
    assert click_containment(_samples(), Everything(), 5, progress=False)["containment"] == 1.0
    centre = click_containment(_samples(), CentreSquare(), 200, progress=False)
    assert centre["clicks"] == 800 and abs(centre["containment"] - 0.25) < 0.05  # the centre quarter's share (sd 0.015)
    spread = click_robustness(_samples(), CentreSquare(), n_trials=3, progress=False)
    assert spread["mean_std_iou@1"] == 0.0  # the same mask for every click: no spread


def test_a_real_tiny_segmenter_reports_containment(tiny_segmenter):
    c = click_containment(_samples()[:1], TorchBackend(tiny_segmenter), 2, progress=False)
    assert c["clicks"] == 2 and c["containment"] in (0.0, 0.5, 1.0)
