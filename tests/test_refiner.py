"""The click refiner (model/refiner.py): a zero start that changes nothing, follow-up clicks that
reach the output through it alone, and a refiner-only fine-tune that trains it and nothing else."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from oace.model.chain import STEM_MAPS, chain_disk_model, start_state
from oace.model.registry import PRESETS, build, save_checkpoint
from oace.model.segmenter import SegmenterConfig
from oace.model.train_config import TrainConfig
from oace.model.train_tasks import build_task, load_start_weights, set_train_mode
from oace.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 128


def _disk_model_and_prior(seed: int):
    tiny = PRESETS["segmenter_tiny"].config
    msf = dataclasses.replace(tiny.msfnet, guidance_channels=1, refiner_width=0)
    disk = build("segmenter", SegmenterConfig(prior=None, msfnet=msf, input_size=SIZE), seed=seed).eval()
    with torch.no_grad():  # BatchNorm statistics away from the defaults, as in a trained model
        for m in disk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return disk, build("prior", tiny.prior, seed=seed + 1).eval()


def _inputs(clicks: list[tuple[int, int, int]], prev: float = 0.0):
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8))
    rows = torch.full((1, 24, 3), -1, dtype=torch.int32)
    rows[0, : len(clicks)] = torch.tensor(clicks, dtype=torch.int32)
    return image, rows, torch.full((1, SIZE, SIZE, 1), prev)


def test_a_refined_chain_equals_its_disk_model_on_one_click_at_step_zero():
    disk, prior = _disk_model_and_prior(3)
    refined = chain_disk_model(disk, prior, refiner_width=8).eval()
    assert refined.msfnet.refiner is not None
    assert not refined.msfnet.state_dict()[STEM_MAPS].any()  # follow-ups now reach the refiner only
    one = _inputs([(60, 40, 1)])
    with torch.no_grad():
        assert (refined(*one) - disk(*one)).abs().max().item() <= 1e-6
        refined.msfnet.refiner.correction.weight.normal_(0.0, 1.0)  # trained: the refiner now corrects...
        refined.msfnet.refiner.correction.bias.fill_(3.0)
        assert (refined(*one) - disk(*one)).abs().max().item() <= 1e-6  # ...follow-ups only: a first click stays


def test_follow_up_clicks_reach_the_output_through_the_refiner_alone():
    disk, prior = _disk_model_and_prior(4)
    refined = chain_disk_model(disk, prior, refiner_width=8).eval()
    one, two = _inputs([(60, 40, 1)]), _inputs([(60, 40, 1), (20, 100, 0)], prev=0.7)
    with torch.no_grad():
        assert torch.equal(refined(*one), refined(*two))  # the refiner's correction is still zero
        refined.msfnet.refiner.correction.weight.normal_(0.0, 1.0)  # training moves it
        after_one, after_two = refined(*one), refined(*two)
    assert (after_two - after_one).abs().max().item() > 1e-3
    # the base network (everything but the refiner) reads no follow-up click: it can run once per sample
    net = refined.msfnet
    image = torch.randn(1, 3, SIZE, SIZE)
    guide = torch.randn(1, net.cfg.guidance_channels, SIZE, SIZE)
    maps = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        f0, l0 = net.base(image, guide, torch.zeros_like(maps))
        f1, l1 = net.base(image, guide, maps)
    assert torch.equal(f0, f1) and torch.equal(l0, l1)


def test_start_state_refuses_what_it_cannot_preserve():
    disk, prior = _disk_model_and_prior(0)
    target = chain_disk_model(disk, prior, refiner_width=8).msfnet
    other = dataclasses.replace(disk.msfnet.cfg, msf_width=24)
    with pytest.raises(ValueError, match="no function-preserving start"):
        start_state(disk.msfnet.state_dict(), other, target, disk_last=True)


# ---------------------------------------------------------------- --train refiner


@pytest.fixture(scope="module")
def disk_start(tmp_path_factory):
    """A tiny disk model and prior on disk, as `--weights` and `--prior` take them."""
    root = tmp_path_factory.mktemp("refiner")
    disk, prior = _disk_model_and_prior(5)
    save_checkpoint(disk, root / "disk.pt", meta={"weights": "test"})
    save_checkpoint(prior, root / "prior.pt", meta={"weights": "test"})
    return root


def _batch(n: int = 4, side: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clicks = torch.full((n, 24, 3), -1, dtype=torch.int32)
    clicks[:, 0] = torch.tensor([side // 2, side // 2, 1], dtype=torch.int32)
    clicks[:, 1] = torch.tensor([6, 6, 0], dtype=torch.int32)  # a negative click in the background
    mask = torch.zeros(n, 1, side, side)
    mask[:, :, side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 1
    return {"image": torch.randn(n, 3, side, side, generator=g), "mask": mask, "ignore": torch.zeros_like(mask),
            "clicks": clicks, "iterations": torch.tensor([0, 1, 2, 3])}


def _refiner_task(root, **kw):
    cfg = TrainConfig(stage="msfnet", data="unused", out="unused", size=64, model="segmenter_tiny",
                      prior=str(root / "prior.pt"), weights=str(root / "disk.pt"), train="refiner", lr=1e-2, **kw)
    task = build_task(cfg, torch.device("cpu"))
    load_start_weights(task, cfg.weights)
    return cfg, task


def test_a_refiner_only_fine_tune_trains_the_refiner_alone_and_lowers_the_loss(disk_start, monkeypatch):
    cfg, task = _refiner_task(disk_start)
    net = task.trainable
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls = []
    base = net.base
    monkeypatch.setattr(net, "base", lambda *a: calls.append(1) or base(*a))
    params = [p for p in net.parameters() if p.requires_grad]
    assert params and all(n.startswith("refiner.") for n, p in net.named_parameters() if p.requires_grad)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    batch = _batch()
    set_train_mode(net, True, cfg.bn_frozen)
    task.loss(batch, net)  # simulating 0-3 follow-up clicks...
    assert len(calls) == 1  # ...runs the base once: each round runs the refiner alone
    batch["iterations"].zero_()  # no simulated clicks: the batch itself stays fixed across the steps
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = task.loss(batch, net)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * losses[0], losses
    after = net.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert moved and all(k.startswith("refiner.") for k in moved)  # BatchNorm statistics included


def test_train_refiner_refuses_a_model_without_refiner_and_a_base_that_reads_clicks(disk_start):
    cfg = TrainConfig(stage="msfnet", data="unused", out="unused", size=64, model="segmenter_disk", train="refiner")
    with pytest.raises(InputError, match="has no click refiner"):
        build_task(cfg, torch.device("cpu"))
    _, task = _refiner_task(disk_start)
    with torch.no_grad():
        task.trainable.maps_block[0].weight.fill_(0.1)
    with pytest.raises(InputError, match="reads follow-up clicks at its stem"):
        task.loss(_batch(), task.trainable)
    with pytest.raises(InputError, match="--train"):
        TrainConfig(stage="prior", data="d", out="o", train="refiner").check()


def test_a_refiner_only_run_is_judged_by_the_mask_after_the_robot_clicks(disk_start):
    cfg, task = _refiner_task(disk_start, val_robot_clicks=2)
    assert task.metric == "val_miou_robot"  # the first masks are the frozen base's: mIoU@1 cannot move
    loss, ious, extra = task.validate(_batch())
    assert len(ious) == 4 and len(extra["val_miou_robot"]) == 4
    assert all(0.0 <= v <= 1.0 for v in extra["val_miou_robot"]) and loss > 0
    task.cfg = dataclasses.replace(cfg, train="all")
    assert task.metric == "val_miou1"
