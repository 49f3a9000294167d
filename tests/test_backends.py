"""Backends: a tiny real .tflite built here with TensorFlow and the same function in PyTorch must score
identically; the contract's names, dtypes and signature rules are enforced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oace.model.backends import BundleContract, TFLiteBackend, TorchBackend, encode_clicks, open_backend
from oace.model.data.base import Sample
from oace.model.evaluate import EvalConfig, evaluate_dataset
from oace.errors import CheckpointError, InputError

S = 512
R_POS, R_NEG = 48, 16


def build_tflite(path: Path, signature: str = "segment", output: str = "mask", image_dtype: str = "uint8") -> Path:
    """A toy segmenter with the bundle's signature: disks of radius 48 around positive clicks (0.9 on
    bright pixels, green >= 100, else 0.3), 0.05 in disks of radius 16 around negative clicks, the
    previous mask (> 0.5) kept, 0.1 elsewhere. Integer arithmetic only, so every backend agrees exactly."""
    import tensorflow as tf

    dtype = getattr(tf, image_dtype)

    class Toy(tf.Module):
        @tf.function(input_signature=[
            tf.TensorSpec([1, S, S, 3], dtype, name="image"),
            tf.TensorSpec([1, 24, 3], tf.int32, name="clicks"),
            tf.TensorSpec([1, S, S, 1], tf.float32, name="prev_mask"),
        ])
        def segment(self, image, clicks, prev_mask):
            g = tf.cast(image[0, :, :, 1], tf.int32)
            r = tf.range(S, dtype=tf.int32)
            yy, xx = tf.reshape(r, [1, S, 1]), tf.reshape(r, [1, 1, S])
            x = tf.reshape(clicks[0, :, 0], [24, 1, 1])
            y = tf.reshape(clicks[0, :, 1], [24, 1, 1])
            lab = tf.reshape(clicks[0, :, 2], [24, 1, 1])
            d2 = (xx - x) * (xx - x) + (yy - y) * (yy - y)
            pos = tf.reduce_max(tf.cast(tf.logical_and(d2 <= R_POS ** 2, tf.equal(lab, 1)), tf.int32), axis=0) > 0
            neg = tf.reduce_max(tf.cast(tf.logical_and(d2 <= R_NEG ** 2, tf.equal(lab, 0)), tf.int32), axis=0) > 0
            obj = tf.where(g >= 100, tf.constant(0.9), tf.constant(0.3))
            keep = tf.logical_or(pos, prev_mask[0, :, :, 0] > 0.5)
            out = tf.where(neg, tf.constant(0.05), tf.where(keep, obj, tf.constant(0.1)))
            return {output: tf.reshape(out, [1, S, S, 1])}

    toy = Toy()
    saved = path.parent / f"{path.stem}_savedmodel"
    tf.saved_model.save(toy, str(saved), signatures={signature: toy.segment.get_concrete_function()})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=[signature])
    path.write_bytes(conv.convert())
    return path


def toy_torch_module():
    """The same toy segmenter as an nn.Module with the Segmenter forward contract."""
    import torch

    class Toy(torch.nn.Module):
        def forward(self, image, clicks, prev_mask):
            g = image[0, :, :, 1].to(torch.int32)
            r = torch.arange(S, dtype=torch.int32)
            yy, xx = r.view(1, S, 1), r.view(1, 1, S)
            x, y, lab = (clicks[0, :, i].view(24, 1, 1) for i in range(3))
            d2 = (xx - x) ** 2 + (yy - y) ** 2
            pos = ((d2 <= R_POS ** 2) & (lab == 1)).any(0)
            neg = ((d2 <= R_NEG ** 2) & (lab == 0)).any(0)
            obj = torch.where(g >= 100, torch.tensor(0.9), torch.tensor(0.3))
            keep = pos | (prev_mask[0, :, :, 0] > 0.5)
            out = torch.where(neg, torch.tensor(0.05), torch.where(keep, obj, torch.tensor(0.1)))
            return out.view(1, S, S, 1)

    return Toy()


@pytest.fixture(scope="session")
def toy_tflite(tmp_path_factory) -> Path:
    pytest.importorskip("tensorflow")
    return build_tflite(tmp_path_factory.mktemp("toy") / "toy_fp32.tflite")


def synthetic_samples(n: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(200, 700)), int(rng.integers(200, 700))
        yy, xx = np.mgrid[:h, :w]
        cy, cx, ry, rx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(0.1, 0.3) * h, rng.uniform(0.1, 0.3) * w
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image[..., 1] = np.where(rng.random((h, w)) < 0.8, 200, 20)  # mostly bright: the toy says object
        ignore = np.zeros_like(mask)
        ignore[: h // 10] = True
        out.append(Sample(image=image, mask=mask & ~ignore, ignore=ignore, name=f"s{i}"))
    return out


def test_tflite_backend_finds_the_contract_by_name(toy_tflite):
    b = TFLiteBackend(toy_tflite)
    assert b.signature == "segment" and b.output == "mask" and b.name == "tflite:toy_fp32.tflite"
    image = np.full((S, S, 3), 150, np.uint8)
    prob = b.predict(image, [(100, 100, 1), (120, 100, 0)], np.zeros((S, S), np.float32))
    assert prob.shape == (S, S) and prob.dtype == np.float32
    assert prob[100, 100 - 48] == pytest.approx(0.9) and prob[100, 100 - 49] == pytest.approx(0.1)
    assert prob[100, 120] == pytest.approx(0.05) and prob[300, 300] == pytest.approx(0.1)


def test_torch_and_tflite_give_the_same_probabilities(toy_tflite):
    tfl, pt = TFLiteBackend(toy_tflite), TorchBackend(toy_torch_module())
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    prev = (rng.random((S, S)) > 0.7).astype(np.float32)
    clicks = [(10, 500, 1), (300, 40, 0), (511, 0, 1), (200, 200, 0)]
    assert np.array_equal(tfl.predict(image, clicks, prev), pt.predict(image, clicks, prev))


@pytest.mark.slow
def test_both_backends_score_the_same_predictions_identically(toy_tflite):
    samples = synthetic_samples(4, seed=1)
    a = evaluate_dataset(samples, TFLiteBackend(toy_tflite, num_threads=1), EvalConfig(max_clicks=8, progress=False))
    b = evaluate_dataset(samples, TorchBackend(toy_torch_module()), EvalConfig(max_clicks=8, progress=False))
    assert [r.ious for r in a.results] == [r.ious for r in b.results]
    assert [r.clicks for r in a.results] == [r.clicks for r in b.results]
    assert a.metrics == b.metrics
    assert 0 < a.metrics["miou@1"] < a.metrics["miou@8"] < 100  # the toy improves with clicks


def test_output_under_another_name_is_accepted(tmp_path):
    pytest.importorskip("tensorflow")
    b = TFLiteBackend(build_tflite(tmp_path / "renamed.tflite", signature="serving_default", output="output_0"))
    assert b.signature == "serving_default" and b.output == "output_0"


def test_wrong_input_dtype_is_rejected_naming_the_file(tmp_path):
    pytest.importorskip("tensorflow")
    path = build_tflite(tmp_path / "float_image.tflite", image_dtype="float32")
    with pytest.raises(CheckpointError, match=r"float_image\.tflite: input 'image' is float32"):
        TFLiteBackend(path)


def test_not_a_tflite_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.tflite"
    bad.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(CheckpointError, match="junk.tflite"):
        open_backend(bad)
    with pytest.raises(CheckpointError, match="missing.tflite"):
        open_backend(tmp_path / "missing.tflite")


def test_clicks_are_encoded_as_the_bundle_rows():
    contract = BundleContract(512, 24, 0.49)
    enc = encode_clicks([(5, 7, 1), (511, 0, 0)], contract)
    assert enc.dtype == np.int32 and enc.shape == (1, 24, 3)
    assert enc[0, :3].tolist() == [[5, 7, 1], [511, 0, 0], [0, 0, -1]]
    assert (enc[0, 2:, 2] == -1).all()
    with pytest.raises(InputError, match="row 0"):
        encode_clicks([(5, 7, 0)], contract)
    with pytest.raises(InputError, match="512"):
        encode_clicks([(512, 7, 1)], contract)
    with pytest.raises(InputError, match="at most 24"):
        encode_clicks([(1, 1, 1)] * 25, contract)
    small = BundleContract(64, 4, 0.49)  # the rows follow the contract, not a module constant
    assert encode_clicks([(63, 0, 1)], small).shape == (1, 4, 3)
    with pytest.raises(InputError, match="outside the 64x64 image"):
        encode_clicks([(64, 0, 1)], small)
    with pytest.raises(InputError, match="at most 4"):
        encode_clicks([(1, 1, 1)] * 5, small)


def test_torch_backend_runs_a_real_checkpoint(tmp_path):
    from oace.model.registry import build_model, save_checkpoint

    ckpt = save_checkpoint(build_model("segmenter_tiny", seed=0), tmp_path / "tiny.pt")
    backend = open_backend(ckpt)
    assert isinstance(backend, TorchBackend)
    run = evaluate_dataset(synthetic_samples(2, seed=2), backend, EvalConfig(max_clicks=3, progress=False))
    assert run.metrics["n"] == 2 and all(len(r.ious) == 3 for r in run.results)
    image = np.zeros((S, S, 3), np.uint8)
    prob = backend.predict(image, [(10, 10, 1)], np.zeros((S, S), np.float32))
    assert prob.shape == (S, S) and 0.0 <= prob.min() <= prob.max() <= 1.0
    again = open_backend(ckpt).predict(image, [(10, 10, 1)], np.zeros((S, S), np.float32))
    assert np.array_equal(prob, again)  # a checkpoint reloads to the same function
