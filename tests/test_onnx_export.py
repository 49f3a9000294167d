"""The Segmenter exports with torch.onnx.export and ONNX Runtime reproduces torch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from oace.model.registry import build_model
from oace.model.segmenter import pack_clicks


def _export_and_compare(model, path, *, dynamo: bool):
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 512, 512, 3), dtype=torch.uint8, generator=g)
    clicks = torch.from_numpy(pack_clicks([(100, 200, True), (300, 300, False), (50, 60, True)], 24))
    prev = torch.rand(1, 512, 512, 1, generator=g)
    torch.onnx.export(
        model, (image, clicks, prev), str(path), input_names=["image", "clicks", "prev_mask"],
        output_names=["mask"], opset_version=17, dynamo=dynamo,
    )
    onnx.checker.check_model(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    specs = {i.name: (i.type, i.shape) for i in sess.get_inputs()}
    assert specs == {
        "image": ("tensor(uint8)", [1, 512, 512, 3]),
        "clicks": ("tensor(int32)", [1, 24, 3]),
        "prev_mask": ("tensor(float)", [1, 512, 512, 1]),
    }
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [("mask", [1, 512, 512, 1])]
    got = sess.run(None, {"image": image.numpy(), "clicks": clicks.numpy(), "prev_mask": prev.numpy()})[0]
    with torch.no_grad():
        want = model(image, clicks, prev).numpy()
    return float(np.abs(got - want).max())


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True])
def test_tiny_segmenter_exports_and_onnxruntime_matches_torch(tmp_path, tiny_segmenter, dynamo):
    assert _export_and_compare(tiny_segmenter, tmp_path / "tiny.onnx", dynamo=dynamo) < 1e-5


@pytest.mark.slow
def test_full_segmenter_exports_and_onnxruntime_matches_torch(tmp_path):
    model = build_model("segmenter", seed=0).eval()
    assert _export_and_compare(model, tmp_path / "segmenter.onnx", dynamo=False) < 1e-4
