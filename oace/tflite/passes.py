"""Exact rewrites of a converted .tflite that let LiteRT's CPU path (XNNPACK) run it faster.

Each pass changes only how the graph is laid out, never what it computes: outputs stay
bit-identical in every precision (int8 included: the ops moved or copied keep their quantization
parameters). Measured on the full segmenter's int8 bundle at 2 threads on the host:

- `fold_concat_transposes`, about 3.5 ms a call: onnx2tf 1.29 runs every residual Add in NCHW (the
  "rescue guard" in its Add op compares the NHWC result with the ONNX shape, never matches, and
  transposes both inputs). The TFLite converter cancels those transpose pairs everywhere except
  across a CONCATENATION, which it leaves as
      x_i (NHWC) -> TRANSPOSE [0,3,1,2] -> CONCATENATION axis 1 -> TRANSPOSE [0,2,3,1]
  (15 transposes at strides 4-32 in the segmenter). Concatenating the NHWC tensors on axis 3 writes
  the same bytes in the same order.
- `split_shared_pads`: onnx2tf pads explicitly before every stride-2 convolution (PyTorch's
  symmetric padding is not TF's SAME there), and one PAD feeding several convolutions is shared.
  XNNPACK folds a PAD into its convolution only when the convolution is its single reader; a shared
  PAD runs as a full copy of its input (2 ms for the prior's 512x512x16 embedding, read by two
  MSFNet branches). One PAD per reader lets every one fold.
"""

from __future__ import annotations

import collections
import copy
import dataclasses

import numpy as np

from oace.tf_import import import_tensorflow

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


@dataclasses.dataclass(frozen=True)
class PassCounts:
    transposes_removed: int = 0
    pads_split: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def optimize_for_cpu(model_bytes: bytes) -> tuple[bytes, PassCounts]:
    """Run every pass; the input comes back unchanged (same bytes) when nothing matched."""
    import_tensorflow()  # the package's import noise stays off stderr (oace/tf_import.py)
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    counts = PassCounts(
        transposes_removed=sum(fold_concat_transposes(model, g) for g in model.subgraphs),
        pads_split=sum(split_shared_pads(model, g) for g in model.subgraphs),
    )
    if counts == PassCounts():
        return model_bytes, counts
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), counts


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _readers(graph) -> dict[int, list]:
    readers: dict[int, list] = collections.defaultdict(list)
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                readers[i].append(op)
    return readers


def fold_concat_transposes(model, graph) -> int:
    """Rewrite NCHW concatenations between layout transposes in place; returns transposes removed."""
    import_tensorflow()  # the package's import noise stays off stderr (oace/tf_import.py)
    from tensorflow.lite.python import schema_py_generated as schema

    def is_transpose(op, perm: list[int]) -> bool:
        if op is None or _builtin(model, op) != schema.BuiltinOperator.TRANSPOSE:
            return False
        t = graph.tensors[op.inputs[1]]
        data = model.buffers[t.buffer].data
        if data is None or len(data) == 0:
            return False
        dtype = np.int64 if t.type == schema.TensorType.INT64 else np.int32
        return np.frombuffer(bytes(data), dtype=dtype).tolist() == perm

    producer = {i: op for op in graph.operators for i in op.outputs}
    readers = _readers(graph)
    graph_outputs = set(graph.outputs)
    dead: set[int] = set()
    for concat in graph.operators:
        if _builtin(model, concat) != schema.BuiltinOperator.CONCATENATION or concat.builtinOptions.axis not in (1, -3):
            continue
        inputs = [producer.get(i) for i in concat.inputs]
        out = concat.outputs[0]
        after = readers[out]
        if (not inputs or not all(is_transpose(p, TO_NCHW) for p in inputs) or out in graph_outputs or not after
                or not all(is_transpose(c, TO_NHWC) for c in after)
                or any(c.outputs[0] in graph_outputs for c in after[1:])):
            continue
        kept = after[0].outputs[0]  # the NHWC tensor the first trailing transpose produced
        for extra in after[1:]:  # identical trailing transposes: point their readers at `kept`
            for reader in readers[extra.outputs[0]]:
                reader.inputs = [kept if i == extra.outputs[0] else i for i in reader.inputs]
        concat.inputs = [p.inputs[0] for p in inputs]
        concat.outputs = [kept]
        concat.builtinOptions.axis = 3
        dead.update(id(c) for c in after)
        for p in inputs:
            if p.outputs[0] not in graph_outputs and all(reader is concat for reader in readers[p.outputs[0]]):
                dead.add(id(p))
    graph.operators = [op for op in graph.operators if id(op) not in dead]
    return len(dead)


def split_shared_pads(model, graph) -> int:
    """Give every reader of a shared PAD its own copy (placed right after the original); returns copies added."""
    import_tensorflow()  # the package's import noise stays off stderr (oace/tf_import.py)
    from tensorflow.lite.python import schema_py_generated as schema

    readers = _readers(graph)
    graph_outputs = set(graph.outputs)
    ops, added = [], 0
    for op in graph.operators:
        ops.append(op)
        if _builtin(model, op) != schema.BuiltinOperator.PAD or op.outputs[0] in graph_outputs:
            continue
        shared = op.outputs[0]
        for reader in readers[shared][1:]:
            tensor = copy.deepcopy(graph.tensors[shared])
            tensor.name = (tensor.name or b"") + f"/pad_copy_{added}".encode()
            graph.tensors.append(tensor)
            copy_op = copy.deepcopy(op)
            copy_op.outputs = [len(graph.tensors) - 1]
            reader.inputs = [copy_op.outputs[0] if i == shared else i for i in reader.inputs]
            ops.append(copy_op)
            added += 1
    graph.operators = ops
    return added
