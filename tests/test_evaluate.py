"""Protocol and metrics with fake models whose answers are hand-checked."""

from __future__ import annotations

import numpy as np
import pytest

from oace.model.backends import BundleContract
from oace.model.clicks import Click
from oace.model.data.base import Sample
from oace.model.predictor import resize_prob, to_network_xy
from oace.model.evaluate import (
    EvalConfig, Session, click_robustness, compute_metrics, evaluate_dataset, interior_pixels, iou, noc,
)

S = 512


def make_sample(h: int, w: int, r0: int, r1: int, c0: int, c1: int, name: str = "s", seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=bool)
    mask[r0:r1, c0:c1] = True
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Sample(image=image, mask=mask, ignore=np.zeros_like(mask), name=name)


class FixedBackend:
    """Returns the same 512x512 probability map whatever the clicks."""

    name = "fixed"
    contract = BundleContract(S, 24, 0.49)

    def __init__(self, prob: np.ndarray) -> None:
        self.prob = prob.astype(np.float32)
        self.calls: list[tuple[list, np.ndarray]] = []

    def predict(self, image, clicks, prev_mask):
        assert image.shape == (S, S, 3) and image.dtype == np.uint8
        self.calls.append((list(clicks), prev_mask.copy()))
        return self.prob


def test_noc_and_miou_from_hand_made_curves():
    a = [0.5, 0.86, 0.91] + [0.95] * 17
    b = [0.2] * 20
    m = compute_metrics([a, b], 20)
    assert m["noc@85"] == pytest.approx((2 + 20) / 2)
    assert m["noc@90"] == pytest.approx((3 + 20) / 2)
    assert m["miou@1"] == pytest.approx(35.0, abs=1e-4)
    assert m["miou@2"] == pytest.approx(53.0, abs=1e-4)
    assert m["miou@3"] == pytest.approx(55.5, abs=1e-4)
    assert m["miou@20"] == pytest.approx(57.5, abs=1e-4)
    assert m["fail@90"] == 50.0 and m["fail@90_count"] == 1 and m["over_max@90"] == 1 and m["n"] == 2
    assert set(f"miou@{k}" for k in range(1, 21)) <= set(m)


def test_reaching_the_threshold_exactly_at_the_last_click_is_not_a_failure():
    curve = [0.5] * 19 + [0.92]
    m = compute_metrics([curve], 20)
    assert m["noc@90"] == 20 and m["over_max@90"] == 1  # RITM counts it in ">=20"
    assert m["fail@90"] == 0.0                          # but it did reach 90%
    assert noc(curve, 0.9) == 20 and noc([0.9] + [0] * 19, 0.9) == 1


def test_iou_excludes_ignore_pixels():
    gt = np.zeros((4, 4), bool)
    gt[0, :] = True                       # 4 object pixels
    pred = np.zeros((4, 4), bool)
    pred[0, :2] = True
    pred[1, :2] = True                    # 2 right, 2 false positives
    ignore = np.zeros((4, 4), bool)
    ignore[1, 0] = True                   # one false positive ignored
    assert iou(gt, pred) == pytest.approx(2 / 6)
    assert iou(gt, pred, ignore) == pytest.approx(2 / 5)


def test_oracle_model_needs_one_click():
    sample = make_sample(S, S, 100, 200, 150, 300)
    run = evaluate_dataset([sample], FixedBackend(sample.mask.astype(np.float32)), EvalConfig(progress=False))
    assert run.metrics["noc@85"] == 1 and run.metrics["noc@90"] == 1
    assert all(run.metrics[f"miou@{k}"] == 100.0 for k in range(1, 21))
    assert run.metrics["fail@90"] == 0.0


def test_empty_model_needs_twenty_clicks_and_all_clicks_run():
    samples = [make_sample(S, S, 100, 200, 150, 300, "a"), make_sample(S, S, 10, 50, 10, 90, "b", seed=1)]
    backend = FixedBackend(np.zeros((S, S)))
    run = evaluate_dataset(samples, backend, EvalConfig(progress=False))
    assert run.metrics["noc@85"] == 20 and run.metrics["noc@90"] == 20
    assert run.metrics["miou@1"] == 0.0 and run.metrics["fail@90"] == 100.0 and run.metrics["n"] == 2
    assert len(backend.calls) == 40
    for res in run.results:
        assert len(res.clicks) == 20 and all(c.is_positive for c in res.clicks)
        assert len({(c.x, c.y) for c in res.clicks}) == 20


@pytest.mark.parametrize("cols, expected_iou, noc85, noc90", [(80, 0.8, 20, 20), (90, 0.9, 1, 1), (86, 0.86, 1, 20)])
def test_fixed_mask_model_scores_its_fixed_iou(cols, expected_iou, noc85, noc90):
    sample = make_sample(S, S, 100, 200, 100, 200)           # 100x100 object
    prob = np.zeros((S, S))
    prob[100:200, 100:100 + cols] = 0.8                      # 100 x cols inside it
    run = evaluate_dataset([sample], FixedBackend(prob), EvalConfig(progress=False))
    assert run.results[0].ious == pytest.approx([expected_iou] * 20, abs=1e-6)
    assert run.metrics["miou@7"] == pytest.approx(expected_iou * 100, abs=1e-4)
    assert run.metrics["noc@85"] == noc85 and run.metrics["noc@90"] == noc90


def test_threshold_is_049():
    sample = make_sample(S, S, 0, 10, 0, 10)
    prob = np.zeros((S, S))
    prob[0:10, 0:10] = 0.495                                  # above 0.49: the object
    assert evaluate_dataset([sample], FixedBackend(prob), EvalConfig(progress=False)).results[0].ious[0] == 1.0
    prob[0:10, 0:10] = 0.49                                   # not above: nothing
    assert evaluate_dataset([sample], FixedBackend(prob), EvalConfig(progress=False)).results[0].ious[0] == 0.0


def test_original_pixels_map_to_the_512_pixel_holding_their_centre():
    assert to_network_xy(0, 0, width=200, height=100, size=512) == (1, 2)
    assert to_network_xy(199, 99, width=200, height=100, size=512) == (510, 509)  # 199.5*2.56, 99.5*5.12
    assert to_network_xy(100, 50, width=200, height=100, size=512) == (257, 258)
    assert to_network_xy(300, 7, width=512, height=512, size=512) == (300, 7)
    assert to_network_xy(1023, 0, width=1024, height=1, size=512) == (511, 256)


def test_session_resizes_maps_clicks_and_feeds_back_the_512_output():
    sample = make_sample(100, 200, 20, 60, 40, 120)          # original 200 wide, 100 high
    prob = np.zeros((S, S))
    prob[:, :256] = 1.0                                       # left half of the 512 grid
    backend = FixedBackend(prob)
    session = Session(backend, sample.image)
    out = session([Click(x=100, y=50, is_positive=True)])
    assert out.shape == (100, 200) and out.dtype == np.float32
    assert out[:, :99].min() > 0.99 and out[:, 101:].max() < 0.01   # left half at the original size
    out2 = session([Click(x=100, y=50, is_positive=True), Click(x=3, y=97, is_positive=False)])
    (clicks1, prev1), (clicks2, prev2) = backend.calls
    assert clicks1 == [(257, 258, 1)] and clicks2 == [(257, 258, 1), (8, 499, 0)]
    assert not prev1.any()                                    # zeros on the first click
    assert np.array_equal(prev2, prob.astype(np.float32))    # the previous 512 output fed back
    assert np.array_equal(out, out2)


def test_resize_prob_keeps_a_constant_map_constant():
    assert np.allclose(resize_prob(np.full((S, S), 0.3, np.float32), 37, 91), 0.3, atol=1e-6)


def test_iou_is_computed_at_the_original_resolution():
    # object: rows 0..49 of a 100x200 image; the backend predicts the top half of the 512 grid
    sample = make_sample(100, 200, 0, 50, 0, 200)
    prob = np.zeros((S, S))
    prob[:256] = 1.0
    run = evaluate_dataset([sample], FixedBackend(prob), EvalConfig(max_clicks=1, progress=False))
    assert run.results[0].ious == [1.0]


def test_interior_pixels_keep_five_pixels_from_the_border():
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True                                   # 20x20
    pts, fell_back = interior_pixels(mask, 5)
    assert not fell_back and len(pts) == 12 * 12              # rows/cols 9..20
    assert pts.min() == 9 and pts.max() == 20
    thin = np.zeros((30, 30), bool)
    thin[10:13, 2:28] = True                                  # 3 px thick: nothing at distance 5
    pts, fell_back = interior_pixels(thin, 5)
    assert fell_back and set(map(int, pts[:, 0])) == {11}


class LeftHalfBackend:
    """Predicts the whole object when the first click is in the left half of the 512 grid, else nothing."""

    name = "left"
    contract = BundleContract(S, 24, 0.49)

    def __init__(self, mask512: np.ndarray) -> None:
        self.mask = mask512.astype(np.float32)

    def predict(self, image, clicks, prev_mask):
        return self.mask if clicks[0][0] < 256 else np.zeros((S, S), np.float32)


def test_click_robustness_reports_seeded_mean_and_std_per_object():
    sample = make_sample(S, S, 100, 400, 100, 400)
    backend = LeftHalfBackend(sample.mask)
    res = click_robustness([sample], backend, n_trials=5, seed=3, progress=False)
    obj = res["per_object"][0]
    assert len(obj["clicks"]) == 5 and len({tuple(c) for c in obj["clicks"]}) == 5
    assert all(104 <= x <= 395 and 104 <= y <= 395 for x, y in obj["clicks"])   # >= 5 px inside
    expected = [1.0 if x < 256 else 0.0 for x, _ in obj["clicks"]]
    assert obj["ious"] == expected
    assert obj["mean"] == pytest.approx(np.mean(expected)) and obj["std"] == pytest.approx(np.std(expected))
    assert res["mean_iou@1"] == pytest.approx(100 * np.mean(expected))
    again = click_robustness([sample], backend, n_trials=5, seed=3, progress=False)
    other = click_robustness([sample], backend, n_trials=5, seed=4, progress=False)
    assert again["per_object"][0]["clicks"] == obj["clicks"]
    assert other["per_object"][0]["clicks"] != obj["clicks"]
