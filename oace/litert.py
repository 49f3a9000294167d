"""Loading and running .tflite files: LiteRT first, tflite-runtime as the fallback.

ai-edge-litert is 8-12x faster on int8 than tflite-runtime 2.14 on x86 (../shared/design/TOOLCHAIN.md),
so it is preferred; tflite-runtime keeps working for users who only have it. Every stage that runs
a .tflite (export verification, evaluation, the host bench) loads it here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
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


# --- verifying a model file before any interpreter in this process touches it --------------------
# LiteRT builds a model from a file without verifying the flatbuffer: a truncated file or flipped
# bytes segfault it or make it allocate without bound. So the first load of each file happens in a
# child process with an address-space cap and a time limit: Python's own flatbuffer reader walks
# every table (bounds-checked: an out-of-range offset raises), then LiteRT loads, allocates and
# invokes it once on zeros. A signal, the cap or the clock there is a one-line InputError here.

@dataclasses.dataclass(frozen=True)
class VerifyLimits:
    max_bytes: int = (2 << 30) - 1  # a flatbuffer addresses at most 2 GiB
    base_memory_mb: int = 2048  # address space of the child beyond the model: Python, numpy, LiteRT, arena
    memory_per_model_byte: int = 8  # plus this many bytes of address space per byte of model
    seconds: float = 120.0  # parse + load + allocate + one invoke

    def memory_bytes(self, model_bytes: int) -> int:
        return (self.base_memory_mb << 20) + self.memory_per_model_byte * model_bytes


DEFAULT_LIMITS = VerifyLimits()
_VERIFIED: dict[tuple, str | None] = {}  # (path, size, mtime, require_loadable) -> None (ok) or the error

_CHILD = r"""
import json, sys
path, stage = sys.argv[1], "parse"
def say(**kw):
    print(json.dumps(kw), flush=True)
try:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite-runtime alone ships no schema reader: the capped load below still guards
        schema = None
    if schema is not None:
        schema.ModelT.InitFromPackedBuf(bytearray(open(path, "rb").read()), 0)
    stage = "load"
    import numpy as np
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    stage = "invoke"
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    interp.invoke()
    say(ok=True)
except MemoryError:
    say(ok=False, stage="memory", error="MemoryError")
except BaseException as exc:
    msg = (str(exc).strip().splitlines() or [""])[0][:200]
    kind = type(exc).__name__ if type(exc).__module__ == "builtins" else type(exc).__module__ + "." + type(exc).__name__
    say(ok=False, stage=stage, error=kind + (": " + msg if msg else ""))
"""


def _check_header(p: Path, limits: VerifyLimits) -> int:
    """Size and flatbuffer header of a .tflite; returns its size in bytes."""
    if not p.is_file():
        raise InputError(f"{p}: no such .tflite file")
    size = p.stat().st_size
    if size > limits.max_bytes:
        raise InputError(f"{p}: {size} bytes, over the {limits.max_bytes}-byte limit of a TFLite flatbuffer")
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise InputError(f"{p}: not a TFLite flatbuffer (no TFL3 identifier; {size} bytes)")
    root = int.from_bytes(head[:4], "little")
    if not 8 <= root <= size - 4:
        raise InputError(f"{p}: corrupt .tflite (root table offset {root} outside the {size}-byte file)")
    return size


def _child_limits(memory: int):
    def apply() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _first_load(p: Path, size: int, limits: VerifyLimits) -> dict[str, Any]:
    """Parse, load, allocate and invoke the file in a capped child; its verdict as a dict."""
    memory = limits.memory_bytes(size)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(p)], capture_output=True, text=True, env=env,
                              timeout=limits.seconds, preexec_fn=_child_limits(memory), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"ok": False, "stage": "time", "error": f"did not load within {limits.seconds:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode < 0 or not lines:
        sig = _signal_name(-proc.returncode) if proc.returncode < 0 else f"exit {proc.returncode}"
        bad_alloc = "bad_alloc" in proc.stderr or "memory" in proc.stderr.lower()
        return {"ok": False, "stage": "memory" if bad_alloc else "crash", "error": sig}
    return json.loads(lines[-1])


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _verdict(p: Path, result: dict[str, Any], size: int, limits: VerifyLimits, require_loadable: bool) -> str | None:
    if result.get("ok"):
        return None
    stage, error = result.get("stage"), result.get("error")
    if stage == "invoke" or (stage == "load" and not require_loadable):
        # an error raised (not a crash) on zeros, or a file this runtime cannot run (Flex ops): the caller decides
        return None
    mb = limits.memory_bytes(size) >> 20
    return {
        "parse": f"{p}: corrupt .tflite (its flatbuffer does not parse: {error})",
        "load": f"{p}: not a loadable TFLite model ({error})",
        "memory": f"{p}: corrupt .tflite (loading it needs more than the {mb} MB allowed)",
        "time": f"{p}: corrupt .tflite (it {error})",
    }.get(stage, f"{p}: corrupt .tflite (LiteRT crashed loading it: {error})")


def verify_tflite(path: str | os.PathLike, *, require_loadable: bool = True,
                  limits: VerifyLimits = DEFAULT_LIMITS) -> Path:
    """The path, once the file is known safe to open in this process; else a one-line InputError.

    Every stage calls this before it builds an interpreter or parses a .tflite. The first load runs
    in a capped child (about a second); the verdict is cached per (path, size, mtime) in this process.
    require_loadable=False accepts a well-formed file this runtime cannot load (Flex or custom ops).
    """
    p = Path(path)
    size = _check_header(p, limits)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, require_loadable)
    if key not in _VERIFIED:
        _VERIFIED[key] = _verdict(p, _first_load(p, size, limits), size, limits, require_loadable)
    if _VERIFIED[key] is not None:
        raise InputError(_VERIFIED[key])
    return p


@dataclasses.dataclass(frozen=True)
class LoadedInterpreter:
    """An allocated interpreter and the runtime that built it ("ai-edge-litert" or "tflite-runtime")."""

    interpreter: Any
    runtime: str


def load_interpreter(path: str | os.PathLike, *, num_threads: int | None = None,
                     prefer: str = "ai-edge-litert") -> LoadedInterpreter:
    """A ready (allocated) interpreter and its runtime; a missing or corrupt file is a one-line
    InputError naming it."""
    p = verify_tflite(path)
    cls, runtime = interpreter_class(prefer)
    try:
        interp = cls(model_path=str(p), num_threads=num_threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: not a loadable TFLite model ({first[:200]})") from None
    return LoadedInterpreter(interp, runtime)


CONTRACT_DTYPES = {"image": np.uint8, "clicks": np.int32, "prev_mask": np.float32}


def segment_signature(interpreter: Any, path: str | os.PathLike) -> str:
    """The signature a bundle runs through (docs/bundle.md): `segment`, else the only one; InputError
    naming the file otherwise. The one rule every stage uses: SegmentRunner, the host bench."""
    signatures = interpreter.get_signature_list()
    if "segment" in signatures:
        return "segment"
    if len(signatures) == 1:
        return next(iter(signatures))
    raise InputError(f"{path}: needs a signature 'segment' or exactly one signature, "
                     f"found {sorted(signatures) or 'none'}")


def _contract_shapes(path: Path, inputs: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(S, N) from the contract inputs' shapes: image [1, S, S, 3], clicks [1, N, 3], prev_mask [1, S, S, 1]."""
    image, clicks, prev = ([int(v) for v in inputs[n]["shape"]] for n in ("image", "clicks", "prev_mask"))
    size = image[1] if len(image) == 4 else 0
    if len(image) != 4 or image[0] != 1 or image[2] != size or image[3] != 3 or size < 1:
        raise InputError(f"{path}: input 'image' has shape {image}, the bundle contract needs [1, S, S, 3]")
    if prev != [1, size, size, 1]:
        raise InputError(f"{path}: input 'prev_mask' has shape {prev}, the bundle contract needs [1, {size}, {size}, 1]")
    if len(clicks) != 3 or clicks[0] != 1 or clicks[2] != 3 or clicks[1] < 1:
        raise InputError(f"{path}: input 'clicks' has shape {clicks}, the bundle contract needs [1, N, 3]")
    return size, clicks[1]


class SegmentRunner:
    """Runs a bundle through its `segment` signature (docs/bundle.md), addressing tensors by name.

    Signature `segment`, else the only one; output `mask`, else the single output (onnx2tf's `output_0`).
    `input_size` (S) and `max_clicks` (N) are read off the input tensors' shapes.
    __call__(image uint8 [1,S,S,3], clicks int32 [1,N,3], prev_mask float32 [1,S,S,1]) -> float32 [1,S,S,1]
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None, prefer: str = "ai-edge-litert"):
        self.path = Path(path)
        loaded = load_interpreter(path, num_threads=num_threads, prefer=prefer)
        self.interpreter, self.runtime = loaded.interpreter, loaded.runtime
        key = self.signature = segment_signature(self.interpreter, self.path)
        self.runner = self.interpreter.get_signature_runner(key)
        inputs = self.runner.get_input_details()
        missing = set(CONTRACT_DTYPES) - set(inputs)
        if missing:
            raise InputError(f"{self.path}: signature '{key}' lacks input(s) {sorted(missing)}; has {sorted(inputs)}")
        for name, dtype in CONTRACT_DTYPES.items():
            got = np.dtype(inputs[name]["dtype"])
            if got != np.dtype(dtype):
                raise InputError(f"{self.path}: input {name!r} is {got}, the bundle contract needs {np.dtype(dtype)}")
        self.input_size, self.max_clicks = _contract_shapes(self.path, inputs)
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
