"""quantize.calibration: the calibrated modes stream their samples from the calibration manifest, in the
form `tf.lite.TFLiteConverter.representative_dataset` consumes.

The representative dataset renders each sample when the converter asks for it (never the whole set
up front), from a set just built or one opened from a manifest on disk, and the arrays are exactly
those the builder used to keep in memory: the int8 file cannot change (issue 13).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.calibration_data import CalibrationSample, build_calibration_set, open_calibration_set
from oace.errors import ToolkitError
from oace.quantize.calibration import quantize_calibrated, representative_dataset

# sha256 (first 16 hex) of each sample's image, clicks, prev_mask and mask as the builder before
# issue 13 materialized them (commit 4836d1b, `CalibrationSet.samples` / `.held_out` lists) for
# build_calibration_set("embedded", count=12, held_out=3, seed=0, force=True)
EAGER_SAMPLES = ("e0e54d76e47e373f", "8d15275df01c4325", "5ebaf355749fb7b5", "ef3a10a6fb823212", "4abeafa288ff99b4",
                 "a56a045908d5d31d", "2b47ac61298f2230", "b911a4f3d30fe35e", "54dd1a7edcc0305e", "37d2d1329f5c5db2",
                 "5681d3dc66b42f08", "4cf58a4d49178b70")
EAGER_HELD_OUT = ("65ad6d3d098b0c53", "78183c03efc49930", "d387527f60086a98")


def digest(s: CalibrationSample) -> str:
    h = hashlib.sha256()
    for a in (s.image, s.clicks, s.prev_mask, s.mask):
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def make_folder(root: Path, n: int = 6, size: tuple[int, int] = (48, 64)) -> Path:
    """root/images + root/masks: noise with one bright rectangle each (the folder source)."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    h, w = size
    for i in range(n):
        img = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        y0, x0 = int(rng.integers(4, h // 2)), int(rng.integers(4, w // 2))
        mask[y0:y0 + h // 3, x0:x0 + w // 3] = 255
        img[mask > 0] += 120
        Image.fromarray(img).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    return root


class CountingSource:
    """A calibration source that counts the photos decoded (every other attribute is the real one's)."""

    def __init__(self, source) -> None:
        self._source, self.loads = source, 0

    def load(self, inst):
        self.loads += 1
        return self._source.load(inst)

    def __getattr__(self, name):
        return getattr(self._source, name)


def test_streamed_samples_equal_the_ones_the_eager_builder_kept():
    """The same samples, in the same order, with the same arrays as the pre-streaming builder."""
    calib = build_calibration_set("embedded", count=12, held_out=3, seed=0, force=True)
    assert tuple(digest(s) for s in calib.iter_samples()) == EAGER_SAMPLES
    assert tuple(digest(s) for s in calib.iter_samples(held_out=True)) == EAGER_HELD_OUT
    fed = list(representative_dataset(calib)())
    assert len(fed) == 12 and all(list(d) == ["image", "clicks", "prev_mask"] for d in fed)
    for d, s in zip(fed, calib.iter_samples(), strict=True):
        for key in d:
            assert d[key].dtype == getattr(s, key).dtype and np.array_equal(d[key], getattr(s, key)[None])


def test_each_sample_is_rendered_when_the_converter_asks_for_it(tmp_path):
    root = make_folder(tmp_path / "objs")
    built = build_calibration_set(root, count=4, held_out=1, force=True)
    calib = open_calibration_set(built.manifest.save(tmp_path / "bundle"), root)
    calib.source = counting = CountingSource(calib.source)
    generate = representative_dataset(calib)
    assert counting.loads == 0  # opening a set and making its dataset render nothing
    for k, _ in enumerate(generate(), start=1):
        assert counting.loads == k  # one photo decoded per sample handed over, none ahead
    assert counting.loads == 4  # the held-out sample is never calibrated on
    again = [d["prev_mask"] for d in generate()]  # every call streams the same arrays again
    assert counting.loads == 8
    assert all(np.array_equal(a, s.prev_mask[None]) for a, s in zip(again, built.iter_samples(), strict=True))


def toy(tf):
    """A tf.Module with the bundle's signature `segment`: its three inputs by name, each reaching the output."""

    class Toy(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 3, 5, 4], seed=[0, 0]))

        @tf.function(input_signature=[tf.TensorSpec([1, 512, 512, 3], tf.uint8, name="image"),
                                      tf.TensorSpec([1, 24, 3], tf.int32, name="clicks"),
                                      tf.TensorSpec([1, 512, 512, 1], tf.float32, name="prev_mask")])
        def segment(self, image, clicks, prev_mask):
            x = tf.cast(image, tf.float32) / 255.0
            n = tf.reduce_sum(tf.cast(tf.maximum(clicks[:, :, 2], 0), tf.float32))
            h = tf.concat([x, prev_mask, tf.ones_like(prev_mask) * n], axis=-1)
            return {"mask": tf.sigmoid(tf.nn.conv2d(h, self.w, 1, "SAME"))}

    return Toy()


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")  # raised inside the converter
def test_tflite_converter_calibrates_on_the_generator():
    tf = pytest.importorskip("tensorflow")
    calib = build_calibration_set("embedded", count=4, held_out=0, force=True)
    model = toy(tf)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.segment.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    fed = []

    def representative():
        for d in representative_dataset(calib)():
            fed.append(sorted(d))
            yield d

    conv.representative_dataset = representative
    blob = conv.convert()
    assert fed == [["clicks", "image", "prev_mask"]] * 4
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interp = Interpreter(model_content=blob)
    assert sorted(d["dtype"].__name__ for d in interp.get_input_details()) == ["float32", "int32", "uint8"]
    # activations are int8 only when the converter calibrated on the samples (else: dynamic range, float)
    acts = [d for d in interp.get_tensor_details() if d["dtype"] == np.int8 and list(d["shape"]) == [1, 512, 512, 4]]
    assert acts and all(d["quantization"][0] > 0 for d in acts)


@pytest.fixture(scope="module")
def toy_saved_model(tmp_path_factory) -> Path:
    """The toy saved as `oace export` saves the bundle's SavedModel (signature `segment`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    model = toy(tf)
    path = tmp_path_factory.mktemp("toy") / "saved_model"
    tf.saved_model.save(model, str(path), signatures={"segment": model.segment.get_concrete_function()})
    return path


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")  # raised inside the converter
def test_int8_calibrates_from_a_manifest_on_disk_streaming_its_samples(toy_saved_model, tmp_path):
    """The quantize stage's whole path: a manifest file + its source folder -> an int8 file, each
    calibration sample decoded once, when the converter reached it."""
    from oace.tflite.inspection import inspect_bundle_file

    root = make_folder(tmp_path / "objs")
    manifest = build_calibration_set(root, count=4, held_out=1, force=True).manifest.save(tmp_path / "m")
    calib = open_calibration_set(manifest, root)
    calib.source = counting = CountingSource(calib.source)
    art = quantize_calibrated(toy_saved_model, tmp_path / "oace_segmenter_int8.tflite", mode="int8", calibration=calib)
    assert counting.loads == 4
    contents = inspect_bundle_file(art.path)
    assert contents.op_counts.get("CONV_2D") == 1 and "CONV_2D" not in contents.float_ops  # calibrated: int8 conv
    again = quantize_calibrated(toy_saved_model, tmp_path / "again.tflite", mode="int8", calibration=calib)
    assert again.sha256 == art.sha256  # the same streamed samples give the same bytes
    with pytest.raises(ToolkitError, match="int8 quantization needs a representative"):
        quantize_calibrated(toy_saved_model, tmp_path / "none.tflite", mode="int8", calibration=None)
