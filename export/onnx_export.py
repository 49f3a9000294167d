"""Step 1: the Segmenter -> ONNX (opset 17, checked, simplified, static shapes)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from oace.model.segmenter import Segmenter, pack_clicks
from oace.artifacts import Artifact, atomic_path
from oace.errors import InputError, ToolkitError
from oace.reports import tool_versions

INPUT_NAMES = ("image", "clicks", "prev_mask")
OUTPUT_NAME = "mask"
# the opsets this pipeline takes: below 11 the TorchScript exporter dies in an internal assert (7, 8)
# or writes the old Upsample/Resize that onnx2tf misreads; 20 is the newest that exporter writes
OPSETS = range(11, 21)


def check_opset(opset: int) -> int:
    """The opset, or a one-line InputError when the exporter and onnx2tf do not both support it."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise InputError(f"--opset {opset}: must be {OPSETS.start}..{OPSETS.stop - 1} "
                         "(the opsets the ONNX exporter and onnx2tf both support; default 17)")
    return opset


def example_inputs(model: Segmenter, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contract-shaped tracing inputs: a seeded image, two clicks, a nonzero previous mask."""
    s, n = model.cfg.input_size, model.cfg.max_clicks
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (1, s, s, 3), dtype=torch.uint8, generator=g)
    clicks = torch.from_numpy(pack_clicks([(s // 2, s // 2, True), (s // 4, s // 4, False)], n))
    return image, clicks, torch.rand(1, s, s, 1, generator=g)


def export_onnx(model: Segmenter, path: str | os.PathLike, *, opset: int = 17, simplify: bool = True) -> Artifact:
    """Export with the legacy TorchScript exporter (exact opset, 0.6 s vs 7 s for dynamo on the tiny
    net; both match ONNX Runtime), check it, and fold constants with onnxsim so onnx2tf sees static
    Resize sizes. Written atomically."""
    import onnx

    if not isinstance(model, Segmenter):
        raise ToolkitError(f"export needs a Segmenter checkpoint, got {type(model).__name__}")
    check_opset(opset)
    t0 = time.perf_counter()
    model = model.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from the static shape checks
        torch.onnx.export(
            model, example_inputs(model), str(tmp), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            opset_version=opset, dynamo=False,
        )
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        if simplify:
            import onnxsim

            proto, ok = onnxsim.simplify(proto)
            if not ok:
                raise ToolkitError(f"{path}: onnxsim could not validate the simplified graph")
            onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return Artifact.of(path, time.perf_counter() - t0, tool_versions(("onnxsim", "onnxscript")))


def run_onnx(path: str | os.PathLike, image: np.ndarray, clicks: np.ndarray, prev_mask: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {"image": image, "clicks": clicks, "prev_mask": prev_mask})[0]
