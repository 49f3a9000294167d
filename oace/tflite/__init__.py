"""The bundle's .tflite files, shared by export and quantize (and read by the bench): their names,
the signature they are called through, the exact CPU passes every converter output gets
(`oace.tflite.passes`) and what is inside a file (`oace.tflite.inspection`).

A shared piece below every stage: it imports only `oace`'s other shared modules.
"""

from __future__ import annotations

SIGNATURE = "segment"  # the one signature of every bundle: inputs image, clicks, prev_mask; output mask
PREFIX = "oace_segmenter"


def bundle_name(mode: str) -> str:
    """The file of one precision or quantization mode: oace_segmenter_<mode>.tflite (fp32, fp16, int8, ...)."""
    return f"{PREFIX}_{mode}.tflite"


def refused_name(mode: str) -> str:
    """What a file the parity gate refused is called: never its shipping name."""
    return bundle_name(mode).replace(".tflite", ".REFUSED.tflite")
