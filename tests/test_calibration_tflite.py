"""The representative generator is what `tf.lite.TFLiteConverter.representative_dataset` consumes."""

from __future__ import annotations

import numpy as np
import pytest

from oace.calibration_data import build_calibration_set


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")  # raised inside the converter
def test_tflite_converter_calibrates_on_the_generator():
    tf = pytest.importorskip("tensorflow")
    calib = build_calibration_set("embedded", count=4, held_out=0, force=True)

    class Toy(tf.Module):
        """The bundle's three inputs by name, each one reaching the output."""

        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.stateless_normal([3, 3, 5, 4], seed=[0, 0]))

        @tf.function(input_signature=[tf.TensorSpec([1, 512, 512, 3], tf.uint8, name="image"),
                                      tf.TensorSpec([1, 24, 3], tf.int32, name="clicks"),
                                      tf.TensorSpec([1, 512, 512, 1], tf.float32, name="prev_mask")])
        def serve(self, image, clicks, prev_mask):
            x = tf.cast(image, tf.float32) / 255.0
            n = tf.reduce_sum(tf.cast(tf.maximum(clicks[:, :, 2], 0), tf.float32))
            h = tf.concat([x, prev_mask, tf.ones_like(prev_mask) * n], axis=-1)
            return {"mask": tf.sigmoid(tf.nn.conv2d(h, self.w, 1, "SAME"))}

    toy = Toy()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([toy.serve.get_concrete_function()], toy)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    fed = []

    def representative():
        for d in calib.representative():
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
