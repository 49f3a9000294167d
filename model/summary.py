"""Parameter and MAC counts of registered networks at their input resolution.

MACs come from torch's own FlopCounterMode (convolutions and matrix products; MACs = FLOPs / 2),
run on the meta device so no real arithmetic happens: counting the full segmenter takes seconds.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from oace.model.registry import PRESETS, build


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    name: str
    arch: str
    params: int
    macs: int
    input_size: int
    summary: str

    def to_json(self) -> dict:
        return {
            "arch": self.arch,
            "params": self.params,
            "params_m": round(self.params / 1e6, 3),
            "macs": self.macs,
            "gmacs": round(self.macs / 1e9, 3),
            "input": f"{self.input_size}x{self.input_size}",
            "summary": self.summary,
        }


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def example_inputs(arch: str, config, size: int) -> tuple[torch.Tensor, ...]:
    """Inputs of the right dtypes and shapes for one forward pass at size x size (batch 1)."""
    if arch == "prior":
        return torch.zeros(1, 3, size, size), torch.zeros(1, 1, size, size)
    if arch == "msfnet":
        return (
            torch.zeros(1, 3, size, size),
            torch.zeros(1, config.guidance_channels, size, size),
            torch.zeros(1, config.map_channels, size, size),
        )
    return (
        torch.zeros(1, size, size, 3, dtype=torch.uint8),
        torch.zeros(1, config.max_clicks, 3, dtype=torch.int32),
        torch.zeros(1, size, size, 1),
    )


def count_macs(arch: str, config, size: int) -> int:
    with torch.device("meta"):
        model = build(arch, config, seed=None).eval()
        inputs = example_inputs(arch, config, size)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(*inputs)
    return counter.get_total_flops() // 2


def summarize(name: str, size: int = 512) -> ModelSummary:
    preset = PRESETS[name]
    if preset.arch == "segmenter":
        size = preset.config.input_size
    with torch.device("meta"):
        params = count_params(build(preset.arch, preset.config, seed=None))
    return ModelSummary(name, preset.arch, params, count_macs(preset.arch, preset.config, size), size, preset.summary)
