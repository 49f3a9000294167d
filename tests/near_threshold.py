"""A model whose probabilities sit at its own mask threshold, where int8's small errors flip pixels:
the way the tests make an int8 file miss an IoU gate of 1.0 (seeded weights alone give near-empty
masks that agree exactly)."""

from __future__ import annotations

import torch

from oace.export.onnx_export import example_inputs


def centre_on_threshold(model: torch.nn.Module) -> torch.nn.Module:
    """Move the last bias so the median probability on the example inputs is `cfg.mask_threshold`."""
    with torch.no_grad():
        logits = torch.logit(model(*example_inputs(model)).clamp(1e-6, 1 - 1e-6))
        model.msfnet.head.classify.bias -= logits.median() - torch.logit(torch.tensor(model.cfg.mask_threshold))
    return model
