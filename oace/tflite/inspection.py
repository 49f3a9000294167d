"""What is inside a .tflite: signatures, operators with their tensor types, Flex ops, non-int8 ops."""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path

from oace.errors import ToolkitError
from oace.tf_import import import_tensorflow
from oace.tflite import SIGNATURE

# ops that only move, index or convert data: never "compute in float" even when a float tensor passes
_NEUTRAL = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "CAST", "GATHER", "STRIDED_SLICE", "SHAPE", "PACK", "UNPACK"}


@dataclasses.dataclass(frozen=True)
class TFLiteContents:
    signatures: dict[str, dict[str, list[str]]]
    op_counts: dict[str, int]
    float_ops: dict[str, int]  # compute ops that read or write float32 tensors
    flex_ops: list[str]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _read(path: str | os.PathLike):
    """(model object, schema module, {builtin code: op name}); a foreign file is a one-line ToolkitError."""
    import_tensorflow()  # the package's import noise stays off stderr (oace/tf_import.py)
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from oace.litert import verify_tflite

    p = verify_tflite(path, require_loadable=False)  # Python's reader runs away on some corrupt files too
    try:
        model = flatbuffer_utils.read_model(str(p))
    except Exception as exc:  # flatbuffers raises assorted errors on foreign bytes
        raise ToolkitError(f"{p}: not a TFLite flatbuffer ({type(exc).__name__})") from None
    return model, schema, {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def inspect_tflite(path: str | os.PathLike) -> TFLiteContents:
    model, schema, names = _read(path)
    float_type = schema.TensorType.FLOAT32
    ops: collections.Counter[str] = collections.Counter()
    float_ops: collections.Counter[str] = collections.Counter()
    flex: set[str] = set()
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = custom if builtin == schema.BuiltinOperator.CUSTOM and custom else names.get(builtin, str(builtin))
            ops[name] += 1
            if name.startswith("Flex"):
                flex.add(name)
            tensors = [graph.tensors[i] for i in list(op.inputs) + list(op.outputs) if i >= 0]
            if name not in _NEUTRAL and any(t.type == float_type and not _is_const(model, t) for t in tensors):
                float_ops[name] += 1
    signatures = {}
    for sig in model.signatureDefs or []:
        key = sig.signatureKey.decode() if isinstance(sig.signatureKey, bytes) else sig.signatureKey
        signatures[key] = {
            "inputs": sorted(_decode(t.name) for t in sig.inputs),
            "outputs": sorted(_decode(t.name) for t in sig.outputs),
        }
    return TFLiteContents(signatures, dict(sorted(ops.items())), dict(sorted(float_ops.items())), sorted(flex))


def _decode(name) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _is_const(model, tensor) -> bool:
    buf = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def require_no_flex(contents: TFLiteContents, path: str | os.PathLike) -> None:
    if contents.flex_ops:
        raise ToolkitError(
            f"{path}: uses Select-TF (Flex) ops {', '.join(contents.flex_ops)}, which the stock LiteRT runtime "
            "on a phone cannot run; change the model so these convert to TFLite builtins"
        )


def inspect_bundle_file(path: str | os.PathLike) -> TFLiteContents:
    """What a converted bundle file holds; refused (ToolkitError) when a phone could not run it as
    the bundle: Select-TF (Flex) ops, or the `segment` signature lost in conversion."""
    contents = inspect_tflite(path)
    require_no_flex(contents, path)
    if SIGNATURE not in contents.signatures:
        raise ToolkitError(f"{Path(path).name}: lost its {SIGNATURE!r} signature in conversion")
    return contents


# multiply-accumulates per output element, from the operator's weight (or second input) shape
_MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV", "CONV_3D")


@dataclasses.dataclass(frozen=True)
class MacCount:
    """Multiply-accumulates of one call, per op type and per activation dtype of the op's data input."""

    by_op: dict[str, int]
    by_dtype: dict[str, int]  # "int8", "float32", "int16", ...: which kernels run the arithmetic

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    @property
    def precision(self) -> str | None:
        """The activation dtype that carries most of the MACs (None for a model without any)."""
        return max(self.by_dtype, key=self.by_dtype.get) if self.by_dtype else None

    def to_json(self) -> dict:
        return {"total": self.total, "gmacs": self.total / 1e9, "precision": self.precision, **dataclasses.asdict(self)}


def tflite_macs(path: str | os.PathLike) -> MacCount:
    """Multiply-accumulates of one call of subgraph 0 (convolutions and matrix products only).

    Per output element: CONV_2D kh*kw*cin (weights [cout, kh, kw, cin]); DEPTHWISE_CONV_2D kh*kw;
    FULLY_CONNECTED in_features (weights [out, in]); BATCH_MATMUL the contracted size;
    CONV_3D kd*kh*kw*cin. TRANSPOSE_CONV counts kh*kw*cout per input element. Elementwise ops,
    pooling and resizes are not counted, as model/summary.py does not count them on the PyTorch
    side (the two agree on the segmenter: 38.66 GMACs).
    """
    import numpy as np

    model, schema, names = _read(path)
    dtypes = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = model.subgraphs[0]

    def shape(i: int) -> list[int]:
        return [int(d) for d in graph.tensors[i].shape]

    by_op: collections.Counter[str] = collections.Counter()
    by_dtype: collections.Counter[str] = collections.Counter()
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if name not in _MAC_OPS:
            continue
        out, data = int(np.prod(shape(op.outputs[0]))), op.inputs[0]
        if name == "CONV_2D":
            per = int(np.prod(shape(op.inputs[1])[1:]))
        elif name == "CONV_3D":  # weights [kd, kh, kw, cin, cout]
            per = int(np.prod(shape(op.inputs[1])[:-1]))
        elif name == "DEPTHWISE_CONV_2D":
            per = int(np.prod(shape(op.inputs[1])[1:3]))
        elif name == "FULLY_CONNECTED":
            per = shape(op.inputs[1])[-1]
        elif name == "BATCH_MATMUL":
            adj_x = bool(getattr(op.builtinOptions, "adjX", False))
            per = shape(op.inputs[0])[-2 if adj_x else -1]
        else:  # TRANSPOSE_CONV: inputs (output_shape, weights [cout, kh, kw, cin], input)
            data = op.inputs[2]
            out, per = int(np.prod(shape(data))), int(np.prod(shape(op.inputs[1])[:3]))
        by_op[name] += out * per
        by_dtype[dtypes.get(graph.tensors[data].type, "unknown")] += out * per
    return MacCount(dict(sorted(by_op.items())), dict(sorted(by_dtype.items())))
