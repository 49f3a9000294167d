"""What is inside a .tflite: signatures, operators with their tensor types, Flex ops, non-int8 ops."""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path

from oace.errors import ToolkitError

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


def inspect_tflite(path: str | os.PathLike) -> TFLiteContents:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    p = Path(path)
    try:
        model = flatbuffer_utils.read_model(str(p))
    except Exception as exc:  # flatbuffers raises assorted errors on foreign bytes
        raise ToolkitError(f"{p}: not a TFLite flatbuffer ({type(exc).__name__})") from None
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
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
