"""The training loop on tiny synthetic data: a step lowers the loss, resume is exact, outputs and errors."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oace.model.registry import PRESETS, build, load_model, save_checkpoint
from oace.model.train import run_training, train_step
from oace.model.train_config import TrainConfig
from oace.model.train_state import load_state
from oace.model.train_tasks import build_task
from oace.model.train_data import TrainSet, TrainSetConfig, open_datasets, parse_specs
from oace.cli import main
from oace.errors import InputError


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # slow: make test-fast leaves it out


@pytest.fixture(scope="module")
def salient_dir(tmp_path_factory) -> Path:
    """12 synthetic 80x64 images, a textured ellipse on a noisy background, ECSSD layout."""
    root = tmp_path_factory.mktemp("synth") / "SYNTH"
    (root / "images").mkdir(parents=True)
    (root / "ground_truth_mask").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    for i in range(12):
        cx, cy, rx, ry = rng.integers(25, 55), rng.integers(20, 44), rng.integers(10, 20), rng.integers(8, 16)
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        img = rng.integers(0, 90, (64, 80, 3)).astype(np.uint8)
        img[mask] = (rng.integers(120, 255, 3) + rng.integers(-20, 20, (int(mask.sum()), 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i:04d}.jpg", quality=95)
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "ground_truth_mask" / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prior") / "prior.pt"
    save_checkpoint(build("prior", PRESETS["segmenter_tiny"].config.prior, seed=1), path, meta={"weights": "test"})
    return path


def _cfg(salient_dir: Path, out: Path, stage: str, prior: Path | None = None, **kw) -> TrainConfig:
    base = dict(stage=stage, data=f"salient:{salient_dir}", out=str(out), epochs=1, batch=4, size=64,
                model="segmenter_tiny", prior=str(prior) if prior else None, val_fraction=0.2, patches=16, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _fixed_batch(cfg: TrainConfig, n: int = 4) -> dict[str, torch.Tensor]:
    ds = TrainSet(open_datasets(parse_specs(cfg.data)), list(range(n)),
                  TrainSetConfig(size=cfg.size, clicks=cfg.clicks, seed=0, train=True, multi_click=cfg.stage == "msfnet"))
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


@pytest.mark.parametrize("stage", ["prior", "msfnet"])
def test_one_training_step_lowers_the_loss_on_a_fixed_batch(salient_dir, tiny_prior, tmp_path, stage):
    cfg = _cfg(salient_dir, tmp_path, stage, tiny_prior if stage == "msfnet" else None)
    task = build_task(cfg, torch.device("cpu"))
    batch = _fixed_batch(cfg)
    batch["iterations"].zero_()  # no simulated clicks: the batch itself stays fixed across the step
    task.trainable.train()
    opt = torch.optim.Adam(task.trainable.parameters(), lr=cfg.lr)
    before = train_step(task, task.trainable, opt, [batch])
    with torch.no_grad():
        after = float(task.loss(batch, task.trainable))
    assert after < before - 1e-4, (before, after)
    if stage == "msfnet":  # the frozen prior did not move
        assert all(p.grad is None for p in task.prior.parameters())


@pytest.mark.parametrize("stage", ["prior", "msfnet"])
def test_a_bf16_autocast_step_lowers_the_loss_on_a_fixed_batch(salient_dir, tiny_prior, tmp_path, stage):
    from oace.model.train import amp_dtype

    assert amp_dtype(torch.device("cpu")) == torch.bfloat16 and amp_dtype(torch.device("cuda")) == torch.float16
    cfg = _cfg(salient_dir, tmp_path, stage, tiny_prior if stage == "msfnet" else None, amp=True)
    task = build_task(cfg, torch.device("cpu"))
    batch = _fixed_batch(cfg)
    batch["iterations"].zero_()
    task.trainable.train()
    opt = torch.optim.Adam(task.trainable.parameters(), lr=cfg.lr)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv = task.trainable.backbone.conv1
        assert conv(torch.zeros(1, conv.in_channels, 8, 8)).dtype == torch.bfloat16  # autocast is on
    before = train_step(task, task.trainable, opt, [batch], amp=True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        after = float(task.loss(batch, task.trainable))
    assert after < before - 1e-4, (before, after)
    assert all(p.dtype == torch.float32 for p in task.trainable.parameters())  # master weights stay fp32


def test_roc_auc_matches_the_hand_computed_value():
    from oace.model.train_tasks import roc_auc

    # positives score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of the 4 (pos, neg) pairs are ordered right
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])) == 0.75
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5  # a tie counts half
    assert np.isnan(roc_auc(np.array([1.0, 2.0]), np.array([True, True])))


def _history(run: Path) -> tuple[list[list[float]], dict[str, torch.Tensor], dict]:
    state = load_state(run / "last.pt")
    return [r["step_losses"] for r in state["history"]], state["model"], state["optimizer"]


@pytest.mark.parametrize("stage", ["prior", "msfnet"])
def test_resume_continues_from_the_same_state(salient_dir, tiny_prior, tmp_path, stage):
    prior = tiny_prior if stage == "msfnet" else None
    straight = _cfg(salient_dir, tmp_path / "a", stage, prior, epochs=2)
    run_training(straight)
    # the interrupted run: stopped after epoch 1 (last.pt is all a kill -9 leaves), then resumed
    run_training(dataclasses.replace(straight, out=str(tmp_path / "b"), epochs=1))
    run_training(dataclasses.replace(straight, out=str(tmp_path / "b"), epochs=2, resume=True))
    losses_a, model_a, opt_a = _history(tmp_path / "a")
    losses_b, model_b, opt_b = _history(tmp_path / "b")
    assert len(losses_a) == 2 and len(losses_a[0]) == 2  # 9 training objects, global batch 4: 2 steps per epoch
    assert losses_a == losses_b  # identical loss curve, bit for bit
    assert losses_a[0] != losses_a[1]
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert all(torch.equal(opt_a["state"][k]["exp_avg"], opt_b["state"][k]["exp_avg"]) for k in opt_a["state"])
    report = json.loads((tmp_path / "b" / "train.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]


def _read_events(path: Path) -> list:
    from tensorboard.compat.proto.event_pb2 import Event

    data, events, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (n,) = struct.unpack("<Q", data[pos : pos + 8])
        events.append(Event.FromString(data[pos + 12 : pos + 12 + n]))
        pos += 12 + n + 4
    return events


def test_msfnet_run_writes_reports_and_an_exportable_segmenter(salient_dir, tiny_prior, tmp_path):
    out = tmp_path / "run"
    summary = run_training(_cfg(salient_dir, out, "msfnet", tiny_prior, epochs=2))
    for name in ("last.pt", "best.pt", "segmenter.pt", "metrics.csv", "train.json", "train.md", "curves.png"):
        assert (out / name).is_file(), name
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,val_loss,val_miou1,val_miou_robot,val_obey_pos,val_obey_neg,val_click_target,val_containment,val_interior_spread,crops_per_s,seconds"
    assert len(rows) == 3
    assert summary["best"]["metric"] == "val_miou1" and summary["click_radius"] == 1
    first, second = summary["epochs"]
    assert (first["crops_seen"], second["crops_seen"]) == (first["steps"] * 4, (first["steps"] + second["steps"]) * 4)
    assert first["crops_per_s"] > 0 and 0.0 <= first["train_share_with_negative"] <= 1.0
    assert 0.0 <= first["val_click_target"] <= 1.0 and 0.0 <= first["val_containment"] <= 1.0
    assert summary["epochs"][0]["val_objects"] == 2 and 0.0 <= summary["epochs"][0]["val_miou1"] <= 1.0
    seg = load_model(out / "segmenter.pt")
    # trained at 64 px, shipped with the bundle contract (512 input, radius-5 disks)
    assert type(seg).__name__ == "Segmenter" and (seg.cfg.input_size, seg.cfg.click_radius) == (512, 5)
    assert seg.prior is not None and seg.cfg.disk_guidance  # the tiny preset is the shipped chain: OACE + disk
    assert seg.cfg.msfnet.guidance_channels == seg.cfg.prior.embed_dim + 1
    assert torch.equal(seg.prior.state_dict()["project.weight"], load_model(tiny_prior).state_dict()["project.weight"])
    probs = seg(torch.zeros(1, 512, 512, 3, dtype=torch.uint8),
                torch.tensor([[[240, 240, 1]] + [[0, 0, -1]] * 23], dtype=torch.int32), torch.zeros(1, 512, 512, 1))
    assert probs.shape == (1, 512, 512, 1)
    tags = {v.tag for e in _read_events(next((out / "tb").iterdir())) for v in e.summary.value}
    assert {"train_loss", "val_loss", "val_miou1", "step_loss"} <= tags


def test_prior_run_logs_auc_inits_the_backbone_and_saves_a_prior_checkpoint(salient_dir, tmp_path):
    # an "ImageNet" checkpoint holding only the stem and layer1 of the tiny backbone (3 input channels)
    source = build("prior", PRESETS["segmenter_tiny"].config.prior, seed=5).backbone.state_dict()
    stem = {k: (v[:, :3] if k == "conv1.weight" else v) for k, v in source.items() if k.startswith(("conv", "bn", "layer1"))}
    torch.save(stem, tmp_path / "imagenet.pth")
    summary = run_training(_cfg(salient_dir, tmp_path / "run", "prior", init=str(tmp_path / "imagenet.pth"), val_fraction=0.3, val_max=2))
    assert summary["epochs"][0]["val_objects"] == 2  # 4 held out (30 % of 12), 2 scored
    auc = summary["epochs"][0]["val_auc"]
    assert 0.0 <= auc <= 1.0 and summary["best"] == {"epoch": 1, "metric": "val_auc", "value": auc}
    assert 0.5 < summary["epochs"][0]["val_auc_distance"] <= 1.0  # compact ellipses: nearness to the click ranks well
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0] == "epoch,train_loss,val_loss,val_auc,val_auc_distance,crops_per_s,seconds"
    report = summary["init"]["prior.backbone"]
    assert report["loaded"] == len(stem) - 1 and len(report["partial"]) == 1 and len(report["missing"]) > 0
    assert json.loads((tmp_path / "run" / "train.json").read_text())["init"] == summary["init"]
    assert type(load_model(tmp_path / "run" / "prior.pt")).__name__ == "OACEPrior"


def test_ablation_presets_train_with_the_same_command(salient_dir, tmp_path, capsys):
    code = main(["train", "msfnet", "--preset", "segmenter_baseline", "--data", f"salient:{salient_dir}",
                 "--out", str(tmp_path), "--size", "64", "--batch", "2", "--limit", "3", "--val-fraction", "0.3",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    seg = load_model(tmp_path / "segmenter.pt")
    assert seg.prior is None and seg.msfnet.msf is None  # "Baseline": click disk, no MSF module


def test_run_errors_are_one_line_and_exit_2(salient_dir, tiny_prior, tmp_path, capsys):
    run_training(_cfg(salient_dir, tmp_path / "r", "prior"))
    with pytest.raises(InputError, match="already holds a run"):
        run_training(_cfg(salient_dir, tmp_path / "r", "prior"))
    with pytest.raises(InputError, match="was trained with lr=0.0005, not 0.001"):
        run_training(_cfg(salient_dir, tmp_path / "r", "prior", lr=1e-3, resume=True, epochs=2))
    with pytest.raises(InputError, match="pass --prior CKPT"):
        run_training(_cfg(salient_dir, tmp_path / "m", "msfnet"))
    with pytest.raises(InputError, match="click-disk ablation: it takes no --prior"):
        run_training(_cfg(salient_dir, tmp_path / "m", "msfnet", tiny_prior, model="segmenter_disk"))
    with pytest.raises(InputError, match="--click-weight -1.0: must be >= 0"):
        run_training(_cfg(salient_dir, tmp_path / "m", "msfnet", tiny_prior, click_weight=-1.0))
    with pytest.raises(InputError, match="--batch 6: must be a multiple of processes x --accum = 1 x 4"):
        run_training(_cfg(salient_dir, tmp_path / "m", "prior", batch=6, accum=4))
    assert main(["train", "prior", "--data", "GrabCut:../shared/data", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["oace train: error: ../shared/data: GrabCut is an evaluation set; training on it would leak into the reported metrics"]


def test_crop_training_validates_on_whole_images(salient_dir, tiny_prior, tmp_path):
    with pytest.raises(InputError, match="--crop 48: must be a positive multiple of 32, at most --size 64"):
        run_training(_cfg(salient_dir, tmp_path / "bad", "msfnet", tiny_prior, crop=48))
    summary = run_training(_cfg(salient_dir, tmp_path / "run", "msfnet", tiny_prior, size=64, crop=32))
    assert summary["epochs"][0]["val_objects"] == 2 and 0.0 <= summary["epochs"][0]["val_miou1"] <= 1.0
    assert "random 32x32 crops" in (tmp_path / "run" / "train.md").read_text()


def test_cosine_schedule_follows_steps_or_the_time_budget_whichever_ends_first():
    from oace.model.train import lr_factor

    assert lr_factor("constant", 90, 100, 0.9) == 1.0
    assert lr_factor("cosine", 0, 100) == 1.0
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 100) == pytest.approx(0.0)
    # half the time budget spent after 10 % of the steps: the time fraction rules
    assert lr_factor("cosine", 10, 100, time_done=0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 75, 100, time_done=0.5) == pytest.approx(0.5 * (1 + np.cos(0.75 * np.pi)))
    assert lr_factor("cosine", 10, 100, time_done=3.0) == pytest.approx(0.0)


def test_max_minutes_ends_the_run_early_with_the_epoch_validated_and_saved(salient_dir, tiny_prior, tmp_path, monkeypatch):
    import oace.model.train as train_mod

    clock = {"t": 1000.0}

    def fake_time() -> float:  # every call advances 1 s: a 0.1-minute budget lasts a handful of steps
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(train_mod.time, "time", fake_time)
    out = tmp_path / "budget"
    cfg = _cfg(salient_dir, out, "msfnet", tiny_prior, epochs=50, batch=2, max_minutes=0.1, schedule="cosine")
    summary = run_training(cfg)
    epochs = summary["epochs"]
    assert len(epochs) < 50  # stopped long before the planned 50 epochs
    last = epochs[-1]
    planned = int(last["stopped"].split(" of ")[1].split()[0])  # "... reached after N of M steps"
    assert last["stopped"].startswith("--max-minutes 0.1 reached") and 0 < last["steps"] < planned
    assert last["lr_end"] < cfg.lr  # the cosine followed the budget down
    assert "val_miou1" in last and (out / "segmenter.pt").is_file()
    state = load_state(out / "last.pt")
    assert state["epoch"] == last["epoch"]


def test_weights_start_a_run_from_trained_weights_and_refuse_other_architectures(salient_dir, tiny_prior, tmp_path):
    from oace.model.train_tasks import load_start_weights
    from oace.errors import CheckpointError

    first = tmp_path / "first"
    run_training(_cfg(salient_dir, first, "msfnet", tiny_prior))
    trained = load_model(first / "segmenter.pt")
    cfg = _cfg(salient_dir, tmp_path / "second", "msfnet", tiny_prior, weights=str(first / "segmenter.pt"))
    task = build_task(cfg, torch.device("cpu"))
    assert not torch.equal(next(iter(task.trainable.parameters())), next(iter(trained.msfnet.parameters())))  # fresh before
    load_start_weights(task, str(first / "segmenter.pt"))
    for k, v in trained.msfnet.state_dict().items():
        assert torch.equal(task.trainable.state_dict()[k], v), k
    # the prior stage takes the segmenter's prior
    prior_task = build_task(_cfg(salient_dir, tmp_path / "p", "prior"), torch.device("cpu"))
    load_start_weights(prior_task, str(first / "segmenter.pt"))
    for k, v in trained.prior.state_dict().items():
        assert torch.equal(prior_task.trainable.state_dict()[k], v), k
    # a prior checkpoint cannot start the msfnet stage; another architecture is refused
    with pytest.raises(CheckpointError, match="starts from a segmenter checkpoint"):
        load_start_weights(task, str(tiny_prior))
    big = tmp_path / "big.pt"
    save_checkpoint(build("prior", PRESETS["segmenter"].config.prior, seed=0), big)
    with pytest.raises(CheckpointError, match="not the architecture this run trains"):
        load_start_weights(prior_task, str(big))
    with pytest.raises(InputError, match="--weights and --init"):
        dataclasses.replace(cfg, init="x.pth").check()
