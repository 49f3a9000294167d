"""One Predictor over any backend: its contract (input size, click rows, mask threshold) comes from
the model, a PyTorch config or a bundle's tensors and metadata JSON, and both backends answer alike."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fakes.tiny_tflite import build_tiny_bundle
from test_backends import build_tflite, toy_torch_module
from oace.model.backends import BundleContract, TFLiteBackend, TorchBackend, bundle_threshold
from oace.model.clicks import Click
from oace.model.evaluate import EvalConfig, Session, evaluate_dataset
from oace.model.data.base import Sample
from oace.model.predictor import Predictor
from oace.errors import CheckpointError, InputError

SMALL, SMALL_CLICKS, RADIUS = 64, 8, 8


def build_small_bundle(path: Path) -> Path:
    """A 64x64 bundle with 8 click rows: 0.9 on bright pixels (green >= 100) within 8 px of a positive
    click, 0.4 on dark ones there, 0.1 elsewhere. 0.4 sits between 0.3 and 0.49: the threshold decides."""
    import tensorflow as tf

    s, n = SMALL, SMALL_CLICKS

    class Small(tf.Module):
        @tf.function(input_signature=[
            tf.TensorSpec([1, s, s, 3], tf.uint8, name="image"),
            tf.TensorSpec([1, n, 3], tf.int32, name="clicks"),
            tf.TensorSpec([1, s, s, 1], tf.float32, name="prev_mask"),
        ])
        def segment(self, image, clicks, prev_mask):
            g = tf.cast(image[0, :, :, 1], tf.int32)
            r = tf.range(s, dtype=tf.int32)
            yy, xx = tf.reshape(r, [1, s, 1]), tf.reshape(r, [1, 1, s])
            x, y, lab = (tf.reshape(clicks[0, :, i], [n, 1, 1]) for i in range(3))
            d2 = (xx - x) * (xx - x) + (yy - y) * (yy - y)
            pos = tf.reduce_max(tf.cast(tf.logical_and(d2 <= RADIUS ** 2, tf.equal(lab, 1)), tf.int32), axis=0) > 0
            out = tf.where(pos, tf.where(g >= 100, tf.constant(0.9), tf.constant(0.4)), tf.constant(0.1))
            return {"mask": tf.reshape(out, [1, s, s, 1]) + 0.0 * prev_mask}

    small = Small()
    saved = path.parent / f"{path.stem}_savedmodel"
    tf.saved_model.save(small, str(saved), signatures={"segment": small.segment.get_concrete_function()})
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["segment"]).convert())
    shutil.rmtree(saved)
    return path


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory) -> Path:
    pytest.importorskip("tensorflow")
    return build_small_bundle(tmp_path_factory.mktemp("small") / "small_int8.tflite")


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory) -> Path:
    pytest.importorskip("tensorflow")
    return build_tflite(tmp_path_factory.mktemp("toy") / "toy_fp32.tflite")


def with_metadata(bundle: Path, folder: Path, metadata: dict | str | None) -> Path:
    """A copy of the bundle in `folder` with `metadata` (a dict as JSON, a str verbatim) beside it as `<stem>.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / bundle.name
    shutil.copyfile(bundle, copy)
    if metadata is not None:
        text = metadata if isinstance(metadata, str) else json.dumps(metadata)
        copy.with_suffix(".json").write_text(text)
    return copy


def threshold_json(value) -> dict:
    """The part of export/metadata.py's JSON the Predictor reads."""
    return {"format": "oace-bundle/1", "outputs": {"mask": {"dtype": "float32", "threshold": value}}}


# --- the contract ----------------------------------------------------------------------------------

def test_a_tflite_and_a_torch_predictor_share_the_contract_and_the_masks(toy_bundle):
    """The toy bundle (no metadata JSON) and the same function in PyTorch: one contract, the same
    probabilities at the photo's size for clicks in the photo's pixels."""
    tfl, pt = Predictor(TFLiteBackend(toy_bundle, num_threads=1)), Predictor(TorchBackend(toy_torch_module()))
    assert tfl.contract == pt.contract == BundleContract(512, 24, 0.49)
    photo = np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    clicks = [(200, 150, True), (30.5, 280.2, False), (450, 0, True)]
    tfl.set_image(photo)
    pt.set_image(photo)
    a, b = tfl.predict(clicks), pt.predict(clicks)
    assert a.shape == (300, 451) and np.array_equal(a, b)
    assert np.array_equal(tfl.predict(clicks, prev_mask=a), pt.predict(clicks, prev_mask=b))


def test_a_segmenter_predictor_takes_its_contract_from_the_config(tiny_segmenter):
    from oace.model.registry import build

    assert Predictor(tiny_segmenter).contract == BundleContract(512, 24, 0.49)
    cfg = dataclasses.replace(tiny_segmenter.cfg, input_size=64, max_clicks=6, mask_threshold=0.3)
    pred = Predictor(build("segmenter", cfg, seed=0))
    assert pred.contract == BundleContract(64, 6, 0.3) and pred.threshold == 0.3
    pred.set_image(np.zeros((90, 40, 3), np.uint8))
    assert pred.network_image.shape == (1, 64, 64, 3)
    assert pred.predict([(39, 89, True)]).shape == (90, 40)
    with pytest.raises(InputError, match="at most 6"):
        pred.predict([(1, 1, True)] * 7)


def test_old_checkpoints_without_a_threshold_load_with_the_default(tmp_path, tiny_segmenter):
    import torch

    from oace.model.registry import save_checkpoint

    path = save_checkpoint(tiny_segmenter, tmp_path / "tiny.pt")
    record = torch.load(path, weights_only=True)
    assert record["config"].pop("mask_threshold") == 0.49
    torch.save(record, path)
    assert Predictor.open(path).contract == BundleContract(512, 24, 0.49)


def test_a_bundle_of_another_size_is_read_off_its_tensors(small_bundle, tmp_path):
    """64x64 input, 8 click rows: the Predictor resizes to 64 and maps clicks onto the 64 grid."""
    pred = Predictor.open(with_metadata(small_bundle, tmp_path / "a", None), num_threads=1)
    assert pred.contract == BundleContract(SMALL, SMALL_CLICKS, 0.49)  # no JSON beside it: the config's default
    photo = np.zeros((128, 256, 3), np.uint8)
    photo[..., 1] = 200
    pred.set_image(photo)
    assert pred.network_image.shape == (1, SMALL, SMALL, 3)
    prob = pred.predict([(200, 40, True)])  # -> (50, 20) on the 64 grid: 4 photo px per grid px across, 2 down
    assert prob.shape == (128, 256)
    assert prob[40, 200] == pytest.approx(0.9) and prob[120, 10] == pytest.approx(0.1)
    with pytest.raises(InputError, match="at most 8"):
        pred.predict([(1, 1, True)] * 9)
    tiny = Predictor.open(build_tiny_bundle(tmp_path), num_threads=1)  # the 32x32 fake bundle
    assert (tiny.contract.input_size, tiny.contract.max_clicks) == (32, 24)


def test_the_threshold_comes_from_the_metadata_json(small_bundle, tmp_path):
    default = Predictor.open(with_metadata(small_bundle, tmp_path / "none", None))
    written = Predictor.open(with_metadata(small_bundle, tmp_path / "049", threshold_json(0.49)))
    low = Predictor.open(with_metadata(small_bundle, tmp_path / "03", threshold_json(0.3)))
    no_key = with_metadata(small_bundle, tmp_path / "nokey", {"format": "oace-bundle/1", "outputs": {}})
    assert default.threshold == written.threshold == bundle_threshold(no_key) == 0.49
    assert low.contract == BundleContract(SMALL, SMALL_CLICKS, 0.3)
    # a dark photo: the click's disk comes out at 0.4, an object at 0.3 and background at 0.49
    photo = np.zeros((64, 64, 3), np.uint8)
    for pred in (written, low):
        pred.set_image(photo)
    prob = written.predict([(32, 32, True)])
    assert np.array_equal(prob, low.predict([(32, 32, True)]))  # the same probabilities ...
    assert not written.mask(prob).any()  # ... background at 0.49
    assert low.mask(prob).sum() == np.count_nonzero(prob > 0.3) > 150  # the disk (radius 8) at 0.3


def test_a_lower_threshold_changes_what_eval_scores(small_bundle, tmp_path):
    mask = np.zeros((64, 64), bool)
    mask[24:41, 24:41] = True
    image = np.zeros((64, 64, 3), np.uint8)  # dark: the toy answers 0.4 around a positive click
    samples = [Sample(image=image, mask=mask, ignore=np.zeros_like(mask), name="dark")]
    cfg = EvalConfig(max_clicks=1, robustness_trials=0, containment_trials=0, progress=False)
    at_049 = evaluate_dataset(samples, TFLiteBackend(with_metadata(small_bundle, tmp_path / "a", None), 1), cfg)
    at_03 = evaluate_dataset(samples, TFLiteBackend(with_metadata(small_bundle, tmp_path / "b", threshold_json(0.3)), 1), cfg)
    assert (at_049.pred_thr, at_03.pred_thr) == (0.49, 0.3) and at_03.input_size == SMALL
    assert at_049.results[0].ious == [0.0] and at_03.results[0].ious[0] > 0.5
    session = Session(TFLiteBackend(with_metadata(small_bundle, tmp_path / "c", threshold_json(0.3)), 1), image)
    assert session.pred_thr == 0.3 and session.prev.shape == (SMALL, SMALL)


@pytest.mark.parametrize("text, words", [
    ("{not json", "not readable JSON"),
    (json.dumps(threshold_json(1.5)), "outputs.mask.threshold is 1.5"),
    (json.dumps(threshold_json("0.49")), "outputs.mask.threshold is '0.49'"),
])
def test_a_broken_metadata_json_is_a_checkpoint_error(small_bundle, tmp_path, text, words):
    bundle = with_metadata(small_bundle, tmp_path, text)
    with pytest.raises(CheckpointError, match=words) as info:
        Predictor.open(bundle)
    assert "small_int8.json" in str(info.value)


# --- the API ---------------------------------------------------------------------------------------

def test_clicks_may_be_tuples_or_robot_clicks(toy_bundle):
    pred = Predictor.open(toy_bundle, num_threads=1)
    photo = np.full((200, 300, 3), 150, np.uint8)
    pred.set_image(photo)
    assert np.array_equal(pred.predict([(10, 20, True), (100, 150, False)]),
                          pred.predict([Click(10, 20, True), Click(100, 150, False)]))
    with pytest.raises(InputError, match=r"\(300, 5\) is outside the 300x200 image"):
        pred.predict([Click(300, 5, True)])


def test_open_refuses_a_part_and_a_missing_file(tmp_path):
    from oace.model.registry import build_model, save_checkpoint

    prior = save_checkpoint(build_model("prior", seed=0), tmp_path / "prior.pt")
    with pytest.raises(InputError, match="OACEPrior checkpoint; a Predictor needs a segmenter"):
        Predictor.open(prior)
    with pytest.raises(CheckpointError, match="missing.tflite"):
        Predictor.open(tmp_path / "missing.tflite")
    with pytest.raises(InputError, match="Predictor needs a Segmenter, got str"):
        Predictor("model.tflite")


def test_the_session_runs_through_the_predictor(toy_bundle):
    """model.evaluate.Session is the Predictor plus the raw output fed back: the same numbers."""
    photo = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    backend = TFLiteBackend(toy_bundle, num_threads=1)
    session, pred = Session(backend, photo), Predictor(backend)
    pred.set_image(photo)
    clicks = [Click(100, 100, True), Click(200, 50, False)]
    first = session(clicks[:1])
    raw = pred.predict_network(clicks[:1])
    assert np.array_equal(session.prev, raw)
    second = session(clicks)
    assert np.array_equal(session.prev, pred.predict_network(clicks, raw))
    assert first.shape == second.shape == (240, 320) and session.pred_thr == pred.threshold == 0.49
