"""--anchor (learning without forgetting): the fine-tune keeps a trained model's first-click masks."""

from __future__ import annotations

import pytest
import torch

from oace.errors import CheckpointError, InputError
from oace.model.losses import anchor_loss
from oace.model.train_config import TrainConfig
from oace.model.train_tasks import build_task, load_anchor, set_train_mode


def test_anchor_loss_is_zero_on_the_target_and_grows_away_from_it():
    target = torch.tensor([0.1, 0.5, 0.9, 0.99]).view(1, 1, 2, 2)
    same = torch.logit(target)
    assert anchor_loss(same, target).item() == pytest.approx(0.0, abs=1e-6)
    near, far = anchor_loss(same + 0.5, target).item(), anchor_loss(same + 2.0, target).item()
    assert 0 < near < far
    ignore = torch.tensor([0.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)  # the only deviation sits on an ignored pixel
    moved = same.clone()
    moved[0, 0, 1, 1] -= 3.0
    assert anchor_loss(moved, target, ignore).item() == pytest.approx(0.0, abs=1e-6)
    assert anchor_loss(moved, target).item() > 0.01


def _batch(n: int, side: int, lone: list[bool]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clicks = torch.full((n, 24, 3), -1, dtype=torch.int32)
    clicks[:, 0] = torch.tensor([side // 2, side // 2, 1], dtype=torch.int32)
    for i, alone in enumerate(lone):
        if not alone:
            clicks[i, 1] = torch.tensor([2, 2, 0], dtype=torch.int32)
    mask = torch.zeros(n, 1, side, side)
    mask[:, :, side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 1
    return {"image": torch.randn(n, 3, side, side, generator=g), "mask": mask, "ignore": torch.zeros_like(mask),
            "clicks": clicks, "iterations": torch.zeros(n, dtype=torch.int64)}


@pytest.mark.slow
def test_a_fine_tune_started_from_its_anchor_pays_nothing_until_its_weights_move():
    cfg = TrainConfig(stage="msfnet", data="unused", out="unused", size=64, model="segmenter_disk",
                      weights="reference_v1", anchor="reference_v1", freeze_bn=True, click_weight=0.0)
    task = build_task(cfg, torch.device("cpu"))
    from oace.model.train_tasks import load_start_weights

    load_start_weights(task, cfg.weights)
    set_train_mode(task.trainable, True, freeze_bn=True)
    batch = _batch(3, 64, lone=[True, False, True])
    with torch.no_grad():
        base = task.loss(batch, task.trainable).item()
        first, maps = task.encoder(batch["clicks"], batch["image"])
        inputs = torch.cat([maps, torch.zeros_like(batch["mask"])], dim=1)
        logits = task.trainable(batch["image"], first, inputs)
        assert task.anchor_term(batch, batch["image"], first, inputs, logits).item() == pytest.approx(0.0, abs=1e-6)
        task.trainable.head.classify.bias += 1.0  # the network drifts: every mask grows
        drifted = task.trainable(batch["image"], first, inputs)
        term = task.anchor_term(batch, batch["image"], first, inputs, drifted).item()
        assert term > 0.01
        only_corrected = _batch(3, 64, lone=[False, False, False])  # no lone first click: nothing to keep
        assert task.anchor_term(only_corrected, batch["image"], first, inputs, drifted).item() == 0.0
    assert base > 0


def test_anchor_must_be_a_click_disk_segmenter_and_only_for_the_msfnet_stage(tmp_path):
    with pytest.raises(InputError, match="--anchor"):
        TrainConfig(stage="prior", data="x", out="y", anchor="reference_v1").check()
    with pytest.raises(InputError, match="--anchor-weight"):
        TrainConfig(stage="msfnet", data="x", out="y", anchor_weight=-1.0).check()
    from oace.model.registry import build_model, save_checkpoint

    chained = save_checkpoint(build_model("segmenter_tiny", seed=0), tmp_path / "chained.pt")
    with pytest.raises(CheckpointError, match="click-disk"):
        load_anchor(str(chained))
