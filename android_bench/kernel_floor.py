"""This CPU's convolution floor: how fast LiteRT runs int8 and fp32 3x3 convolutions here, and nothing else.

A bundle's milliseconds per GMAC mean little without the host they were measured on. The same
int8 file runs at 2.96 ms/GMAC on a host whose CPU has int8 dot-product instructions (VNNI/AMX)
and at 14 ms/GMAC on an AVX2-only one, where XNNPACK's int8 kernels are no faster than its fp32
ones (both measured, README). So the benchmark measures the floor of the host it runs on instead
of assuming one.

The probe is a stack of 3x3 convolutions + ReLU at HRNet-W18's branch widths and resolutions for a
512x512 input (18/36/72/144 channels at strides 4/8/16/32, plus 64 channels at stride 4, the stem
and stage-1 width), built with TensorFlow, converted to fp32 and int8 (per-channel weights, int8
activations, as the bundle), and timed with the same interpreter the bundle uses. It has no
additions, resizes, pads or concatenations, so a whole network cannot run faster per GMAC on the
same kernels: the bundle's ms/GMAC over the probe's is its overhead on this host.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oace.android_bench.common import timed_ms
from oace.tf_import import import_tensorflow

# (spatial size, channels, convolutions) for a 512x512 input: HRNet-W18's four branches, each with
# the same MACs per conv (the architecture equalizes them), and the 64-channel stage-1 width
PROBE_LAYERS: tuple[tuple[int, int, int], ...] = ((128, 18, 4), (64, 36, 4), (32, 72, 4), (16, 144, 4), (128, 64, 2))


def probe_gmacs(layers: Sequence[tuple[int, int, int]] = PROBE_LAYERS) -> float:
    """GMACs of one call: size^2 * channels^2 * 9 per convolution."""
    return sum(size * size * ch * ch * 9 * n for size, ch, n in layers) / 1e9


@dataclasses.dataclass(frozen=True)
class ProbeFiles:
    fp32: Path
    int8: Path
    gmacs: float
    layers: tuple[tuple[int, int, int], ...]


def build_probe(out_dir: str | os.PathLike, layers: Sequence[tuple[int, int, int]] | None = None, seed: int = 0) -> ProbeFiles:
    """Write conv_floor_fp32.tflite and conv_floor_int8.tflite into out_dir (seeded, a few seconds).

    layers: (spatial size, channels, convolutions) per branch; PROBE_LAYERS by default.
    """
    tf = import_tensorflow()

    from oace.artifacts import write_bytes_atomic

    layers = tuple(tuple(layer) for layer in (PROBE_LAYERS if layers is None else layers))
    rng = np.random.default_rng(seed)
    weights = [[tf.constant(rng.normal(0, (2 / (9 * ch)) ** 0.5, (3, 3, ch, ch)).astype(np.float32)) for _ in range(n)]
               for _, ch, n in layers]
    specs = [tf.TensorSpec((1, size, size, ch), tf.float32) for size, ch, _ in layers]

    @tf.function(input_signature=specs)
    def probe(*xs):
        outs = []
        for x, ws in zip(xs, weights):
            for w in ws:
                x = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))
            outs.append(x)
        return outs

    def representative():
        for _ in range(4):
            yield [np.abs(rng.standard_normal(s.shape)).astype(np.float32) for s in specs]

    def convert(int8: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([probe.get_concrete_function()], probe)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        with warnings.catch_warnings():  # "statistics for quantized inputs were expected": the probe needs none
            warnings.simplefilter("ignore", UserWarning)
            return converter.convert()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out / "conv_floor_fp32.tflite", out / "conv_floor_int8.tflite"
    write_bytes_atomic(fp32, convert(False))
    write_bytes_atomic(int8, convert(True))
    return ProbeFiles(fp32, int8, probe_gmacs(layers), layers)


def time_probe(path: str | os.PathLike, threads: int, *, warmup: int = 2, runs: int = 10) -> list[float]:
    """Milliseconds of `runs` back-to-back invokes of a probe file (inputs zero: conv time does not depend on values)."""
    from oace.litert import interpreter_class, verify_tflite

    Interpreter, _ = interpreter_class()
    interp = Interpreter(model_path=str(verify_tflite(path)), num_threads=threads)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    return timed_ms(interp.invoke, warmup, runs)


def measure_floor(files: ProbeFiles, threads: Sequence[int] = (1, 2), *, rounds: int = 3, runs: int = 10) -> dict[str, Any]:
    """ms/GMAC of the int8 and fp32 probes per thread count (medians over alternating rounds)."""
    result: dict[str, Any] = {"gmacs": files.gmacs, "layers": [list(layer) for layer in files.layers], "threads": {}}
    for n in threads:
        times: dict[str, list[float]] = {"int8": [], "fp32": []}
        for _ in range(rounds):  # alternate, so drift of a shared host hits both alike
            for precision in times:
                times[precision] += time_probe(getattr(files, precision), n, runs=runs)
        int8, fp32 = (statistics.median(times[p]) / files.gmacs for p in ("int8", "fp32"))
        result["threads"][str(n)] = {"int8_ms_per_gmac": int8, "fp32_ms_per_gmac": fp32, "int8_speedup_over_fp32": fp32 / int8}
    return result
