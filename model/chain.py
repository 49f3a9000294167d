"""A function-preserving start for the chained model: a click-disk segmenter + a prior -> `segmenter`.

The shipped `segmenter` guides MSFNet with the OACE embedding *and* the first click's disk
(embed_dim + 1 channels, the disk last). Only two convolutions read the guidance: the guide
block's and the MSF module's first. Built from a trained disk model (`segmenter_disk`), every
MSFNet weight is copied, those two convolutions keep their disk column and get zero columns for
the embedding, so the new model computes exactly what the disk model computed (tested: max abs
difference <= 1e-5) while the prior runs beside it. Training then starts from the disk model's
quality and is judged only by what the embedding adds.
"""

from __future__ import annotations

import dataclasses

import torch

from model.prior import OACEPrior
from model.segmenter import Segmenter, SegmenterConfig

# the MSFNet weights whose input is the guidance: [out, guidance_channels, k, k]
GUIDANCE_READERS = ("guide_block.0.weight", "msf.conv.0.0.weight")


def chained_config(disk_cfg: SegmenterConfig, prior: OACEPrior) -> SegmenterConfig:
    msf = dataclasses.replace(disk_cfg.msfnet, guidance_channels=prior.cfg.embed_dim + 1)
    return dataclasses.replace(disk_cfg, prior=prior.cfg, msfnet=msf, disk_guidance=True)


def chain_disk_model(disk_model: Segmenter, prior: OACEPrior) -> Segmenter:
    """The chained segmenter that equals `disk_model` until its embedding weights move off zero."""
    if disk_model.prior is not None or disk_model.cfg.msfnet.guidance_channels != 1:
        raise ValueError("chain_disk_model: start from a click-disk segmenter (segmenter_disk), not a chained one")
    cfg = chained_config(disk_model.cfg, prior)
    model = Segmenter(cfg)
    model.prior.load_state_dict(prior.state_dict())
    model.msfnet.load_state_dict(widen_guidance(disk_model.msfnet.state_dict(), prior.cfg.embed_dim))
    return model


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
