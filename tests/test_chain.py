"""The chained model's function-preserving start: a disk model + a prior -> the same masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from oace.model.chain import chain_disk_model, widen_guidance
from oace.model.reference import resolve_checkpoint
from oace.model.registry import PRESETS, build, load_model
from oace.model.segmenter import SegmenterConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
    clicks = torch.full((2, 24, 3), -1, dtype=torch.int32)
    clicks[:, :3] = torch.from_numpy(np.array([[[size // 2, size // 3, 1], [size // 4, size // 5, 0], [size // 2 + 9, size // 2, 1]],
                                                [[size // 3, size // 2, 1], [3, 4, 0], [size - 5, size - 9, 0]]], dtype=np.int32))
    prev = torch.from_numpy(rng.random((2, size, size, 1), dtype=np.float32))
    return image, clicks, prev


def _tiny_disk_model(seed: int):
    tiny = PRESETS["segmenter_tiny"].config
    cfg = SegmenterConfig(prior=None, msfnet=dataclasses.replace(tiny.msfnet, guidance_channels=1, refiner_width=0), input_size=128)
    return build("segmenter", cfg, seed=seed).eval(), build("prior", tiny.prior, seed=seed + 1).eval()


def test_chained_tiny_model_equals_its_disk_model_at_step_zero():
    disk, prior = _tiny_disk_model(3)
    with torch.no_grad():  # BatchNorm statistics away from the defaults, as in a trained model
        for m in disk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    chained = chain_disk_model(disk, prior).eval()
    assert chained.cfg.disk_guidance and chained.cfg.msfnet.guidance_channels == prior.cfg.embed_dim + 1
    inputs = _inputs(128, 0)
    with torch.no_grad():
        diff = (chained(*inputs) - disk(*inputs)).abs().max().item()
    assert diff <= 1e-6
    with torch.no_grad():  # and the embedding is live: once its weights move, the output moves
        chained.msfnet.guide_block[0].weight[:, 0] += 5.0
        assert (chained(*inputs) - disk(*inputs)).abs().max().item() > 1e-4  # 100x the step-0 bound


@pytest.mark.slow
def test_chained_reference_equals_reference_v1_at_step_zero():
    """The issue's check: v1's masks, max abs difference <= 1e-5 on seeded inputs, at the bundle's 512,
    for the shipped configuration (with its click refiner, which takes the follow-up clicks over)."""
    v1 = load_model(resolve_checkpoint("reference_v1"))
    prior = build("prior", PRESETS["prior"].config, seed=0).eval()
    shipped = PRESETS["segmenter"].config.msfnet
    chained = chain_disk_model(v1, prior, refiner_width=shipped.refiner_width).eval()
    assert chained.cfg.msfnet == shipped  # the shipped preset: OACE + disk guidance and the click refiner
    assert sum(p.numel() for p in chained.parameters()) == pytest.approx(15.2e6, rel=0.05)
    image, clicks, prev = _inputs(512, 1)
    clicks[:, 1:] = -1  # one click: the refiner's follow-up maps are zero and the model is exactly v1
    inputs = (image, clicks, torch.zeros_like(prev))
    with torch.no_grad():
        diff = (chained(*inputs) - v1(*inputs)).abs().max().item()
    assert diff <= 1e-5


def test_widen_guidance_keeps_the_disk_weights_last_and_zeroes_the_embedding():
    disk, prior = _tiny_disk_model(0)
    state = disk.msfnet.state_dict()
    wide = widen_guidance(state, 8)
    for key in ("guide_block.0.weight", "msf.conv.0.0.weight"):
        assert wide[key].shape[1] == 9 and torch.equal(wide[key][:, 8:], state[key])
        assert not wide[key][:, :8].any()
    assert all(torch.equal(wide[k], v) for k, v in state.items() if k not in ("guide_block.0.weight", "msf.conv.0.0.weight"))


def test_a_chained_model_cannot_be_chained_again():
    tiny = build("segmenter", PRESETS["segmenter_tiny"].config, seed=0)
    with pytest.raises(ValueError, match="start from a click-disk segmenter"):
        chain_disk_model(tiny, tiny.prior)
