"""Loading and running .tflite files: LiteRT first, tflite-runtime as the fallback.

ai-edge-litert is 8-12x faster on int8 than tflite-runtime 2.14 on x86 (../shared/design/TOOLCHAIN.md),
so it is preferred; tflite-runtime keeps working for users who only have it. Every stage that runs
a .tflite (export verification, evaluation, the host bench) loads it here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from oace.errors import InputError, ToolkitError


def interpreter_class(prefer: str = "ai-edge-litert") -> tuple[type, str]:
    """(Interpreter class, runtime name). prefer='tflite-runtime' picks the fallback first."""
    order = ("ai-edge-litert", "tflite-runtime") if prefer != "tflite-runtime" else ("tflite-runtime", "ai-edge-litert")
    for name in order:
        try:
            if name == "ai-edge-litert":
                from ai_edge_litert.interpreter import Interpreter
            else:
                from tflite_runtime.interpreter import Interpreter
            return Interpreter, name
        except ImportError:
            continue
    raise ToolkitError("no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)")


def load_interpreter(path: str | os.PathLike, *, num_threads: int | None = None, prefer: str = "ai-edge-litert") -> Any:
    """A ready (allocated) interpreter; a missing or corrupt file is a one-line InputError naming it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such .tflite file")
    cls, runtime = interpreter_class(prefer)
    try:
        interp = cls(model_path=str(p), num_threads=num_threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: not a loadable TFLite model ({first[:200]})") from None
    interp.oace_runtime = runtime
    return interp


CONTRACT_DTYPES = {"image": np.uint8, "clicks": np.int32, "prev_mask": np.float32}


class SegmentRunner:
    """Runs a bundle through its `segment` signature (docs/bundle.md), addressing tensors by name.

    Signature `segment`, else the only one; output `mask`, else the single output (onnx2tf's `output_0`).
    __call__(image uint8 [1,S,S,3], clicks int32 [1,24,3], prev_mask float32 [1,S,S,1]) -> float32 [1,S,S,1]
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None, prefer: str = "ai-edge-litert"):
        self.path = Path(path)
        self.interpreter = load_interpreter(path, num_threads=num_threads, prefer=prefer)
        self.runtime = self.interpreter.oace_runtime
        signatures = self.interpreter.get_signature_list()
        if "segment" in signatures:
            key = "segment"
        elif len(signatures) == 1:
            key = next(iter(signatures))
        else:
            raise InputError(f"{self.path}: needs a signature 'segment' or exactly one signature, "
                             f"found {sorted(signatures) or 'none'}")
        self.signature = key
        self.runner = self.interpreter.get_signature_runner(key)
        inputs = self.runner.get_input_details()
        missing = set(CONTRACT_DTYPES) - set(inputs)
        if missing:
            raise InputError(f"{self.path}: signature '{key}' lacks input(s) {sorted(missing)}; has {sorted(inputs)}")
        for name, dtype in CONTRACT_DTYPES.items():
            got = np.dtype(inputs[name]["dtype"])
            if got != np.dtype(dtype):
                raise InputError(f"{self.path}: input {name!r} is {got}, the bundle contract needs {np.dtype(dtype)}")
        outputs = list(self.runner.get_output_details())
        if "mask" in outputs:
            self.output_name = "mask"
        elif len(outputs) == 1:
            self.output_name = outputs[0]
        else:
            raise InputError(f"{self.path}: needs output 'mask' or a single output, found {sorted(outputs)}")
        self.input_details = inputs

    def __call__(self, image: np.ndarray, clicks: np.ndarray, prev_mask: np.ndarray) -> np.ndarray:
        out = self.runner(image=image, clicks=clicks, prev_mask=prev_mask)[self.output_name]
        return np.asarray(out, dtype=np.float32)
