"""oace.tflite.inspection.tflite_macs: multiply-accumulates of a .tflite read from its flatbuffer."""

from __future__ import annotations

import numpy as np
import pytest

from oace.tflite.inspection import MacCount, tflite_macs
from oace.errors import ToolkitError

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """One of each counted op, with shapes chosen so every count is distinct."""
    rng = np.random.default_rng(0)
    conv_w = tf.constant(rng.standard_normal((3, 3, 4, 8)).astype(np.float32))  # HWIO
    dw_w = tf.constant(rng.standard_normal((5, 5, 8, 1)).astype(np.float32))
    fc_w = tf.constant(rng.standard_normal((8 * 8 * 8, 10)).astype(np.float32))
    tconv_w = tf.constant(rng.standard_normal((2, 2, 6, 8)).astype(np.float32))  # H W out in

    @tf.function(input_signature=[tf.TensorSpec((1, 16, 16, 4)), tf.TensorSpec((1, 7, 3)), tf.TensorSpec((1, 3, 9))])
    def model(x, a, b):
        y = tf.nn.conv2d(x, conv_w, 2, "SAME")  # [1, 8, 8, 8]
        z = tf.nn.depthwise_conv2d(y, dw_w, [1, 1, 1, 1], "SAME")  # [1, 8, 8, 8]
        t = tf.nn.conv2d_transpose(z, tconv_w, [1, 16, 16, 6], 2, "SAME")  # [1, 16, 16, 6]
        fc = tf.matmul(tf.reshape(z, (1, -1)), fc_w)  # [1, 10]
        return fc, tf.matmul(a, b), t  # [1, 7, 9]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    path = tmp_path_factory.mktemp("macs") / "mixed.tflite"
    path.write_bytes(conv.convert())
    return path


def test_each_op_is_counted_from_its_shapes(mixed_model):
    macs = tflite_macs(mixed_model)
    assert macs.by_op == {
        "CONV_2D": 8 * 8 * 8 * (3 * 3 * 4),
        "DEPTHWISE_CONV_2D": 8 * 8 * 8 * (5 * 5),
        "FULLY_CONNECTED": 10 * 512,
        "BATCH_MATMUL": 7 * 9 * 3,
        "TRANSPOSE_CONV": 8 * 8 * 8 * (2 * 2 * 6),
    }
    assert macs.total == sum(macs.by_op.values()) and macs.by_dtype == {"float32": macs.total}
    assert macs.precision == "float32" and macs.to_json()["gmacs"] == pytest.approx(macs.total / 1e9)


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_int8_kernels_are_told_apart_from_float_ones(tmp_path):
    rng = np.random.default_rng(1)
    w = tf.constant(rng.standard_normal((3, 3, 8, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 12, 12, 8))])
    def model(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.standard_normal((1, 12, 12, 8)).astype(np.float32)] for _ in range(3))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path / "int8.tflite"
    path.write_bytes(conv.convert())
    macs = tflite_macs(path)
    assert macs.by_dtype == {"int8": 12 * 12 * 8 * 72} and macs.precision == "int8"


def test_a_model_without_arithmetic_and_a_foreign_file(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec((1, 4))])
    def add_one(x):
        return x + 1.0

    path = tmp_path / "add.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([add_one.get_concrete_function()], add_one).convert())
    assert tflite_macs(path) == MacCount({}, {}) and tflite_macs(path).precision is None
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 3)
    with pytest.raises(ToolkitError, match="bad.tflite: not a TFLite flatbuffer"):
        tflite_macs(bad)
