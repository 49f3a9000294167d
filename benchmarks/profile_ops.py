"""Where a .tflite spends its time on this CPU: every operator cut out into a one-op model and timed alone.

    python benchmarks/profile_ops.py runs/demo_full/oace_segmenter_int8.tflite [--threads 2] [--runs 3] [--top 30]

No `benchmark_model` binary ships in the Python wheels (../shared/design/TOOLCHAIN.md), so this
rebuilds each operator as its own model (its constant inputs copied, its other inputs random) and
times it with LiteRT. Prints time per op type and the most expensive ops; writes
<model>.ops.json beside the file.

Read the figures as an upper bound per op: in the whole graph XNNPACK folds a PAD into the
convolution that reads it (when that is its only reader) and keeps tensors warm in cache, so the
sum runs a few percent above a whole-model call. What it is for: ops that should cost nothing and
do not. It found the 5 ms GREATER of the old click encoding and the strided channel slices.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oace.android_bench.common import timed_ms  # noqa: E402
from oace.artifacts import write_json_atomic  # noqa: E402


def one_op_models(model_bytes: bytes):
    """Yield (index, op name, output shape, one-op model bytes) for every operator of subgraph 0."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]

    def constant(i: int) -> bool:
        data = model.buffers[graph.tensors[i].buffer].data
        return data is not None and len(data) > 0

    for k, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        single = schema.ModelT()
        single.version, single.operatorCodes, single.buffers = model.version, [code], [schema.BufferT()]
        sub = schema.SubGraphT()
        sub.tensors, remap = [], {}

        def add(i: int) -> int:
            if i < 0:
                return -1
            if i not in remap:
                tensor = copy.copy(graph.tensors[i])
                if constant(i):
                    single.buffers.append(model.buffers[graph.tensors[i].buffer])
                    tensor.buffer = len(single.buffers) - 1
                else:
                    tensor.buffer = 0
                sub.tensors.append(tensor)
                remap[i] = len(sub.tensors) - 1
            return remap[i]

        alone = copy.copy(op)
        alone.opcodeIndex = 0
        alone.inputs = [add(i) for i in op.inputs]
        alone.outputs = [add(i) for i in op.outputs]
        if op.intermediates is not None and len(op.intermediates):
            alone.intermediates = [add(i) for i in op.intermediates]
        sub.inputs = [remap[i] for i in op.inputs if i >= 0 and not constant(i)]
        sub.outputs, sub.operators = list(alone.outputs), [alone]
        single.subgraphs = [sub]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        shape = [int(d) for d in graph.tensors[op.outputs[0]].shape]
        yield k, name, shape, bytes(flatbuffer_utils.convert_object_to_bytearray(single))


def time_op(data: bytes, threads: int, runs: int, seed: int = 0) -> float:
    """Median milliseconds of one invoke of a one-op model, inputs random in a plausible range."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=threads)
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in interp.get_input_details():
        dtype, shape = np.dtype(d["dtype"]), d["shape"]
        if dtype == np.int32:
            value = rng.integers(0, 20, shape)  # indices, coordinates, labels: small and valid
        elif np.issubdtype(dtype, np.integer):
            value = rng.integers(max(np.iinfo(dtype).min, -100), min(np.iinfo(dtype).max, 100), shape)
        elif dtype == np.bool_:
            value = rng.random(shape) > 0.5
        else:
            value = rng.standard_normal(shape)
        interp.set_tensor(d["index"], value.astype(dtype))
    return statistics.median(timed_ms(interp.invoke, warmup=1, runs=runs))


def profile(path: str | Path, *, threads: int = 2, runs: int = 3) -> list[dict]:
    data = Path(path).read_bytes()
    rows = []
    for k, name, shape, single in tqdm(list(one_op_models(data)), desc="ops", unit="op"):
        try:
            ms = time_op(single, threads, runs)
        except (RuntimeError, ValueError) as exc:  # an op that cannot run alone is listed, not fatal
            ms, name = None, f"{name} (not runnable alone: {str(exc).splitlines()[0][:60]})"
        rows.append({"index": k, "op": name, "ms": ms, "output_shape": shape})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    path = Path(args.model)
    if not path.is_file():
        print(f"profile_ops: {path}: no such .tflite file", file=sys.stderr)
        return 2
    rows = profile(path, threads=args.threads, runs=args.runs)
    timed = [r for r in rows if r["ms"] is not None]
    by_type: dict[str, list[float]] = collections.defaultdict(list)
    for r in timed:
        by_type[r["op"]].append(r["ms"])
    print(f"\n{path.name}: {len(rows)} ops, {sum(r['ms'] for r in timed):.1f} ms summed alone at {args.threads} thread(s)\n")
    print("| op | count | ms |\n|---|---|---|")
    for op, times in sorted(by_type.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {op} | {len(times)} | {sum(times):.2f} |")
    print(f"\n| # | op | ms | output |\n|---|---|---|---|")
    for r in sorted(timed, key=lambda r: -r["ms"])[: args.top]:
        print(f"| {r['index']} | {r['op']} | {r['ms']:.2f} | {r['output_shape']} |")
    out = path.with_suffix(".ops.json")
    write_json_atomic(out, {"model": str(path), "threads": args.threads, "runs": args.runs, "ops": rows})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
