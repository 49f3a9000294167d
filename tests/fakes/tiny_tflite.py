"""A tiny real .tflite shaped like the bundle (uint8 image + int32 clicks + float prev_mask -> mask),
converted with TensorFlow's TFLiteConverter; built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

_CACHE: dict[str, Path] = {}


def build_tiny_bundle(directory: Path, size: int = 32) -> Path:
    """Convert a small tf.function with in-graph normalization and signatures into directory/tiny_bundle.tflite.

    Converted once per process: later calls return the first file (callers copy it if they change it)."""
    key = f"tiny_bundle_{size}"
    if key in _CACHE:
        return _CACHE[key]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 3, 5, 4], seed=[1, 2]))

        @tf.function(input_signature=[
            tf.TensorSpec([1, size, size, 3], tf.uint8, name="image"),
            tf.TensorSpec([1, 24, 3], tf.int32, name="clicks"),
            tf.TensorSpec([1, size, size, 1], tf.float32, name="prev_mask"),
        ])
        def serve(self, image, clicks, prev_mask):
            x = (tf.cast(image, tf.float32) / 255.0 - 0.45) / 0.225
            pos = tf.cast(tf.reduce_sum(tf.cast(clicks[..., 2] > 0, tf.float32)), tf.float32)
            x = tf.concat([x, prev_mask, tf.fill([1, size, size, 1], pos)], axis=-1)
            y = tf.nn.conv2d(x, self.w, strides=1, padding="SAME")
            return {"mask": tf.sigmoid(tf.reduce_mean(y, axis=-1, keepdims=True))}

    m = Tiny()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.serve.get_concrete_function()], m)
    path = Path(directory) / "tiny_bundle.tflite"
    path.write_bytes(conv.convert())
    _CACHE[key] = path
    return path
