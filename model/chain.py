"""A function-preserving start for the chained model: a click-disk segmenter + a prior -> `segmenter`.

The shipped `segmenter` guides MSFNet with the OACE embedding *and* the first click's disk
(embed_dim + 1 channels, the disk last). Only two convolutions read the guidance: the guide
block's and the MSF module's first. Built from a trained disk model (`segmenter_disk`), every
MSFNet weight is copied, those two convolutions keep their disk column and get zero columns for
the embedding, so the new model computes exactly what the disk model computed (tested: max abs
difference <= 1e-5) while the prior runs beside it. Training then starts from the disk model's
quality and is judged only by what the embedding adds.

The same start adds a click refiner (model/refiner.py) when the target has one: its last
convolution is zero, so it adds nothing yet, and the stem's click-map branch has its input weights
zeroed (its biases kept): follow-up clicks and the previous mask now reach the network through the
refiner only. With one click those maps are zero, so the one-click output is still the disk
model's; and the base network no longer depends on follow-up clicks, so a refiner-only fine-tune
runs it once per sample however many clicks it simulates (`oace train msfnet --train refiner`).
"""

from __future__ import annotations

import dataclasses

import torch

from oace.model.msfnet import MSFNet, MSFNetConfig
from oace.model.prior import OACEPrior
from oace.model.segmenter import Segmenter, SegmenterConfig

# the MSFNet weights whose input is the guidance: [out, guidance_channels, k, k]
GUIDANCE_READERS = ("guide_block.0.weight", "msf.conv.0.0.weight")
# the stem's click-map branch: its first convolution's weights [16, 3, 1, 1]
STEM_MAPS = "maps_block.0.weight"


def chained_config(disk_cfg: SegmenterConfig, prior: OACEPrior, refiner_width: int = 0) -> SegmenterConfig:
    msf = dataclasses.replace(disk_cfg.msfnet, guidance_channels=prior.cfg.embed_dim + 1, refiner_width=refiner_width)
    return dataclasses.replace(disk_cfg, prior=prior.cfg, msfnet=msf, disk_guidance=True)


def chain_disk_model(disk_model: Segmenter, prior: OACEPrior, refiner_width: int = 0) -> Segmenter:
    """The chained segmenter (with a click refiner when refiner_width > 0) that equals `disk_model`
    on one click until its new weights move off zero."""
    if disk_model.prior is not None or disk_model.cfg.msfnet.guidance_channels != 1:
        raise ValueError("chain_disk_model: start from a click-disk segmenter (segmenter_disk), not a chained one")
    model = Segmenter(chained_config(disk_model.cfg, prior, refiner_width))
    model.prior.load_state_dict(prior.state_dict())
    model.msfnet.load_state_dict(start_state(disk_model.msfnet.state_dict(), disk_model.msfnet.cfg, model.msfnet, True))
    return model


def start_state(state: dict[str, torch.Tensor], cfg: MSFNetConfig, target: MSFNet, disk_last: bool) -> dict[str, torch.Tensor]:
    """An MSFNet's weights (`state`, of config `cfg`) as the function-preserving start of `target`:
    a disk model's guidance readers widened when the target reads OACE + disk (`disk_last`), a
    zero-started refiner added when the target has one. ValueError when no such start exists."""
    want = target.cfg
    if disk_last and cfg.guidance_channels == 1 and want.guidance_channels > 1:
        state = widen_guidance(state, want.guidance_channels - 1)
        cfg = dataclasses.replace(cfg, guidance_channels=want.guidance_channels)
    if want.refiner_width and not cfg.refiner_width:
        state = add_refiner(state, target.state_dict())
        cfg = dataclasses.replace(cfg, refiner_width=want.refiner_width, refiner_dilations=want.refiner_dilations)
    if cfg != want:
        raise ValueError(f"no function-preserving start from {cfg} to {want}")
    return state


def add_refiner(state: dict[str, torch.Tensor], target_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` plus the target's fresh refiner (its correction starts at zero), with the stem's
    click-map inputs zeroed so that follow-up clicks go through the refiner alone."""
    fresh = {k: v for k, v in target_state.items() if k.startswith("refiner.")}
    if any(float(v.abs().max()) != 0.0 for k, v in fresh.items() if k.startswith("refiner.correction.")):
        raise ValueError("add_refiner: the target's refiner correction must start at zero")
    state = {**state, **fresh}
    state[STEM_MAPS] = torch.zeros_like(state[STEM_MAPS])
    return state


def widen_guidance(disk_state: dict[str, torch.Tensor], embed_dim: int) -> dict[str, torch.Tensor]:
    """A disk MSFNet's state dict with the guidance readers widened from 1 to embed_dim + 1 input
    channels: zeros for the embedding, the disk's weights last."""
    state = dict(disk_state)
    for key in GUIDANCE_READERS:
        if key not in state:
            continue  # the Baseline ablation has no MSF module
        w = state[key]
        wide = torch.zeros((w.shape[0], embed_dim + 1, *w.shape[2:]), dtype=w.dtype)
        wide[:, embed_dim:] = w
        state[key] = wide
    return state
