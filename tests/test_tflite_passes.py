"""The exact .tflite rewrites for the CPU path: same outputs, fewer copies, and only where safe."""

from __future__ import annotations

import numpy as np
import pytest

from oace.tflite.passes import PassCounts, optimize_for_cpu

tf = pytest.importorskip("tensorflow")


def convert(fn) -> bytes:
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn).convert()


def ops_of(data: bytes) -> list[str]:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    return [names[max(model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
            for op in model.subgraphs[0].operators]


def run(data: bytes, *inputs: np.ndarray) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    for detail, value in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], value)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


SPECS = [tf.TensorSpec((1, 8, 6, 3)), tf.TensorSpec((1, 4, 3, 5)), tf.TensorSpec((1, 8, 6, 2))]


def nchw_concat(a, b, c):
    """What onnx2tf leaves: each NHWC input transposed to NCHW, concatenated on channels, transposed back."""
    parts = [tf.nn.relu(a), tf.image.resize(b, (8, 6)), c]
    return tf.concat([tf.transpose(p, [0, 3, 1, 2]) for p in parts], axis=1)


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s.shape).astype(np.float32) for s in SPECS]


def test_transposes_around_a_concatenation_are_folded_and_outputs_are_identical(inputs):
    @tf.function(input_signature=SPECS)
    def model(a, b, c):
        return tf.transpose(nchw_concat(a, b, c), [0, 2, 3, 1])

    before = convert(model)
    assert ops_of(before).count("TRANSPOSE") == 4
    after, counts = optimize_for_cpu(before)
    assert counts.transposes_removed == 4 and "TRANSPOSE" not in ops_of(after) and "CONCATENATION" in ops_of(after)
    (want,), (got,) = run(before, *inputs), run(after, *inputs)
    assert got.shape == (1, 8, 6, 10)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[..., 8:], inputs[2])  # channels land in order, last input last


def test_a_concatenation_also_read_in_nchw_is_left_alone(inputs):
    @tf.function(input_signature=SPECS)
    def model(a, b, c):
        cat = nchw_concat(a, b, c)
        return tf.transpose(cat, [0, 2, 3, 1]), tf.reduce_sum(cat, axis=[2, 3])  # the second reads NCHW

    before = convert(model)
    after, counts = optimize_for_cpu(before)
    assert counts == PassCounts() and after == before


def test_a_model_without_the_pattern_comes_back_byte_identical():
    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3))])
    def model(x):
        return tf.concat([x, tf.nn.relu(x)], axis=3)

    before = convert(model)
    assert optimize_for_cpu(before) == (before, PassCounts())


def test_a_pad_read_by_two_convolutions_gets_one_copy_per_reader(inputs):
    rng = np.random.default_rng(1)
    w1, w2 = (tf.constant(rng.standard_normal((3, 3, 3, c)).astype(np.float32)) for c in (4, 6))

    @tf.function(input_signature=SPECS[:1])
    def model(a):
        padded = tf.pad(tf.nn.relu(a), [[0, 0], [1, 1], [1, 1], [0, 0]])  # PyTorch-style stride-2 padding, shared
        return tf.nn.conv2d(padded, w1, 2, "VALID"), tf.nn.conv2d(padded, w2, 2, "VALID")

    before = convert(model)
    assert ops_of(before).count("PAD") == 1
    after, counts = optimize_for_cpu(before)
    assert counts.pads_split == 1 and ops_of(after).count("PAD") == 2
    for want, got in zip(run(before, inputs[0]), run(after, inputs[0])):
        np.testing.assert_array_equal(got, want)
