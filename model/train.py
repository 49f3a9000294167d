"""Training of both stages (issue 6): the OACE prior (Eq. 1) and MSFNet with the prior frozen (Eq. 2-3).

One code path for every scale: `run_training(cfg)` is the same function in a single CPU process and
in each process of `torchrun --nproc_per_node=K -m oace.cli train ...` (DDP: gloo on CPU, nccl on GPU,
a DistributedSampler, seeds per rank, mixed precision with --amp: fp16 autocast with a gradient
scaler on GPU, bf16 autocast on the CPU, where AVX512-BF16/AMX run it 1.7x faster than fp32 here). `cfg.batch` is the global
batch: each process takes batch / (world_size * accum) objects per micro-step.

A run directory holds: last.pt / best.pt (training state: weights, optimizer, epoch, RNG, history,
config; readable with weights_only=True), prior.pt or segmenter.pt (the best weights as a registry
checkpoint for `oace export` / `oace demo --checkpoint`), metrics.csv, tb/ (TensorBoard events),
train.json, train.md and curves.png. Every file is rewritten atomically after each epoch, so a run
killed at any moment resumes (`resume=True`) from the last finished epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from scipy.stats import rankdata
from torch import nn

from model.chain import start_state
from model.click_metrics import MultiObjectSample, multi_object_metrics
from model.click_maps import ClickEncoder
from model.composite import CompositeConfig
from model.losses import CONTRASTS, anchor_loss, cell_size, click_region_loss, hard_negative_region, normalized_focal_loss, prior_loss
from model.msfnet import MSFNetConfig
from model.prior import OACEPrior, PriorConfig
from model.registry import PRESETS, build, load_model, save_checkpoint
from model.segmenter import Segmenter, SegmenterConfig
from model.train_clicks import ClickSimConfig, ClickStats, add_iterative_clicks, robot_obedience
from model.train_data import TrainSet, normalize, open_datasets, parse_specs, split_indices
from oace.artifacts import atomic_path, write_json_atomic, write_text_atomic
from oace.errors import CheckpointError, InputError
from oace.reports import markdown_table, provenance

STAGES = ("prior", "msfnet")
TRAIN_PARTS = ("all", "refiner")
STATE_FORMAT = "oace-train-state/1"
# fields that may change between a run and its resumption
RESUMABLE_CHANGES = ("epochs", "workers", "progress", "resume", "max_minutes")
SCHEDULES = ("constant", "cosine")
# settings that name files or folders: compared by identity on resume
PATH_SETTINGS = ("prior", "init", "weights", "anchor")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    stage: str
    data: str  # "kind:path[,kind:path]"
    out: str
    epochs: int = 1
    batch: int = 64  # global batch (all processes, all accumulation steps)
    accum: int = 1
    lr: float = 5e-4
    size: int = 512
    crop: int | None = None  # train on random crop x crop windows of the size x size image (validation: whole)
    model: str | None = None  # preset; default "prior" / "segmenter"
    prior: str | None = None  # prior checkpoint for the msfnet stage (OACE guidance)
    init: str | None = None  # timm ImageNet HRNet checkpoint for the backbone
    weights: str | None = None  # start from trained weights (fine-tuning): prior.pt (prior stage) or segmenter.pt (msfnet)
    schedule: str = "constant"  # learning rate: "constant" or "cosine" (to 0 over the run, or over --max-minutes if that ends first)
    max_minutes: float | None = None  # wall-clock budget of this session's training steps; the run then validates, saves, ends
    resume: bool = False
    val_fraction: float = 0.05
    val_max: int | None = 2000  # cap on validation objects per epoch (5 % of COCO+LVIS would be ~100k)
    seed: int = 0
    workers: int = 0
    amp: bool = False  # mixed precision: fp16 + gradient scaler on CUDA, bf16 autocast on the CPU
    click_weight: float = 1.0  # msfnet stage: weight of the cross-entropy on the clicked disks (losses.click_region_loss)
    anchor: str | None = None  # msfnet stage: a click-disk segmenter (path or name) whose first-click masks the fine-tune keeps
    anchor_weight: float = 10.0  # msfnet stage: weight of the KL to the anchor's first-click probabilities (losses.anchor_loss)
    val_robot_clicks: int = 2  # msfnet stage: robot follow-up clicks per held-out object, scored for obedience
    val_composites: int = 12  # msfnet stage: held-out multi-object composites for click-target accuracy and containment
    composite: float = 0.5  # share of training items that become copy-paste composites (model/composite.py)
    hard_negatives: float = 0.5  # prior stage: share of background patches drawn from other objects and the band
    limit: int | None = None  # use only this many objects (smoke runs)
    patches: int = 64  # patches of each kind per image (prior stage)
    contrast: str = "within"  # prior stage: "within" (default) or "paper" (Eq. 1 literally; see model/losses.py)
    freeze_bn: bool = False  # BatchNorm in eval mode (exact DDP-vs-single comparisons)
    train: str = "all"  # msfnet stage: "all" weights, or "refiner" only (the rest frozen, run once per sample)
    max_iterative: int = 3  # msfnet stage: at most this many simulated iterative clicks per sample (RITM: 3)
    progress: bool = True

    @property
    def click_radius(self) -> int:
        """The paper's 5 px disk at 512, scaled with the training side (1 px at 64)."""
        return max(1, round(5 * self.size / 512))

    @property
    def hard_band(self) -> int:
        """The ring around the object that hard negatives come from: 24 px at 512 (3 patch cells), scaled."""
        return max(1, round(24 * self.size / 512))

    @property
    def clicks(self) -> ClickSimConfig:
        s = self.size / 512
        return ClickSimConfig(margin=round(3 * s), band=max(2, round(40 * s)), max_iterative=self.max_iterative)

    @property
    def bn_frozen(self) -> bool:
        """BatchNorm in eval mode: asked for, or implied by a refiner-only run (the base is frozen)."""
        return self.freeze_bn or self.train == "refiner"

    def check(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        if self.size <= 0 or self.size % 32:
            raise InputError(f"--size {self.size}: must be a positive multiple of 32")
        if self.crop is not None and (self.crop <= 0 or self.crop % 32 or self.crop > self.size):
            raise InputError(f"--crop {self.crop}: must be a positive multiple of 32, at most --size {self.size}")
        if self.val_max is not None and self.val_max < 1:
            raise InputError(f"--val-max {self.val_max}: must be >= 1")
        for name in ("epochs", "batch", "accum", "patches"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} {getattr(self, name)}: must be >= 1")
        for name in ("click_weight", "anchor_weight"):
            if not getattr(self, name) >= 0:
                raise InputError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if self.train not in TRAIN_PARTS:
            raise InputError(f"--train {self.train!r}: expected one of {', '.join(TRAIN_PARTS)}")
        if self.train != "all" and self.stage != "msfnet":
            raise InputError(f"--train {self.train}: applies to the msfnet stage only")
        if self.max_iterative < 1:
            raise InputError(f"--max-iterative {self.max_iterative}: must be >= 1")
        if self.anchor is not None and self.stage != "msfnet":
            raise InputError("--anchor keeps an MSFNet's first-click masks: it applies to the msfnet stage only")
        for name in ("composite", "hard_negatives"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be a share in [0, 1]")
        for name in ("val_robot_clicks", "val_composites"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if self.lr <= 0:
            raise InputError(f"--lr {self.lr}: must be > 0")
        if self.contrast not in CONTRASTS:
            raise InputError(f"--contrast {self.contrast!r}: expected one of {', '.join(CONTRASTS)}")
        if self.workers < 0:
            raise InputError(f"--workers {self.workers}: must be >= 0")
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise InputError(f"--max-minutes {self.max_minutes}: must be > 0")
        if self.weights is not None and self.init is not None:
            raise InputError("--weights and --init both set the starting weights: pass one")
        for name in ("data", "out", *PATH_SETTINGS):
            if isinstance(getattr(self, name), str) and not getattr(self, name).strip():
                raise InputError(f"--{name} is empty: give a path")


# ---------------------------------------------------------------- distributed


@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, local, device)


def seed_everything(seed: int, rank: int, epoch: int) -> None:
    """Reseed python/numpy/torch from (seed, rank, epoch): each epoch starts from a known state."""
    s = int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors/lists (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(state["python"]), None))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- models


def resolve_model(cfg: TrainConfig) -> tuple[PriorConfig | None, MSFNetConfig | None]:
    """The preset named by cfg.model -> (prior config, msfnet config) of the stage being trained."""
    name = cfg.model or ("prior" if cfg.stage == "prior" else "segmenter")
    if name not in PRESETS:
        raise InputError(f"--model {name!r}: unknown preset; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if cfg.stage == "prior":
        if preset.arch == "prior":
            return preset.config, None
        if preset.arch == "segmenter" and preset.config.prior is not None:
            return preset.config.prior, None
        raise InputError(f"--model {name!r} has no OACE prior to train")
    if preset.arch == "msfnet":
        return (PriorConfig() if preset.config.guidance_channels != 1 else None), preset.config
    if preset.arch == "segmenter":
        return preset.config.prior, preset.config.msfnet
    raise InputError(f"--model {name!r} is a {preset.arch}, not an MSFNet")


def _prior_part(model: nn.Module, path: str) -> nn.Module:
    """A segmenter's prior (CheckpointError for a click-disk ablation, which has none); any other model as is."""
    if not isinstance(model, Segmenter):
        return model
    if model.prior is None:
        raise CheckpointError(f"{path}: this segmenter has no prior (a click-disk ablation)")
    return model.prior


def _frozen(model: nn.Module) -> nn.Module:
    """model in eval mode with no parameter requiring gradients (a teacher or a fixed input network)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def load_prior(path: str, want: PriorConfig) -> OACEPrior:
    """A frozen prior from a `prior` or `segmenter` checkpoint; its embedding must fit the MSFNet."""
    model = _prior_part(load_model(path), path)
    if not isinstance(model, OACEPrior):
        raise CheckpointError(f"{path}: expected a prior or segmenter checkpoint, got {type(model).__name__}")
    if model.cfg.embed_dim != want.embed_dim:
        raise CheckpointError(f"{path}: prior embeds {model.cfg.embed_dim} channels, the MSFNet takes {want.embed_dim}")
    return _frozen(model)


def load_anchor(path: str) -> nn.Module:
    """The frozen MSFNet of a click-disk segmenter (path or registered name) for --anchor."""
    from model.reference import resolve_checkpoint

    model = load_model(resolve_checkpoint(path))
    if not isinstance(model, Segmenter) or model.prior is not None:
        raise CheckpointError(f"{path}: --anchor takes a click-disk segmenter checkpoint (no prior)")
    return _frozen(model.msfnet)


def load_start_weights(task: "PriorTask | MSFNetTask", path: str) -> int:
    """Load trained weights into the network a stage trains (fine-tuning; the optimizer starts fresh).

    Prior stage: a prior checkpoint, or the prior of a segmenter. MSFNet stage: the MSFNet of a
    segmenter checkpoint; the architecture must be the one this run builds, except that a click-disk
    model's MSFNet may start the chained one (OACE + disk guidance): its guidance readers are widened
    with zero columns for the embedding (model/chain.py), a function-preserving start. Returns the crops the
    weights have seen (their meta's `crops_seen`, 0 when not recorded).
    """
    from model.reference import resolve_checkpoint

    model = load_model(resolve_checkpoint(path))
    seen = int(model.checkpoint_meta.get("crops_seen", 0))
    if isinstance(task, PriorTask):
        model = _prior_part(model, path)
        want = OACEPrior
    else:
        if not isinstance(model, Segmenter):
            raise CheckpointError(f"{path}: the msfnet stage starts from a segmenter checkpoint, got {type(model).__name__}")
        model = model.msfnet
        want = type(task.trainable)
    mismatch = CheckpointError(f"{path}: its {type(model).__name__} is not the architecture this run trains ({task.trainable.cfg})")
    if not isinstance(model, want):
        raise mismatch
    state = model.state_dict()
    if isinstance(task, MSFNetTask):
        try:  # a disk model may start the chained one, a model without refiner one with it (model/chain.py)
            state = start_state(state, model.cfg, task.trainable, task.disk_guidance)
        except ValueError:
            raise mismatch from None
    elif model.cfg != task.trainable.cfg:
        raise mismatch
    task.trainable.load_state_dict(state)
    return seen


class SideEncoders:
    """Click encoders by image side: training crops and whole validation images differ in size,
    the disk radius (pixel scale) is the same."""

    def __init__(self, radius: int, device: torch.device):
        self.radius, self.device = radius, device
        self.by_side: dict[tuple[int, int], ClickEncoder] = {}

    def __call__(self, clicks: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        side = (int(image.shape[-2]), int(image.shape[-1]))
        if side not in self.by_side:
            self.by_side[side] = ClickEncoder(side[0], side[1], self.radius).to(self.device)
        return self.by_side[side](clicks)


class PriorTask:
    """Stage 1: contrastive training of the OACE prior (paper Sec. 3.1)."""

    metric = score_key = "val_auc"

    def __init__(self, cfg: TrainConfig, prior_cfg: PriorConfig, device: torch.device):
        self.cfg = cfg
        self.net: nn.Module = build("prior", prior_cfg, seed=cfg.seed).to(device)
        self.trainable = self.net
        self.encoder = SideEncoders(cfg.click_radius, device)
        self.cell = cell_size(cfg.size)

    def backbones(self) -> dict[str, nn.Module]:
        return {"prior.backbone": self.trainable.backbone}

    def loss(self, batch: dict[str, torch.Tensor], net: nn.Module) -> torch.Tensor:
        """Two forward passes (image + D, image + 1 - D), run as one call on 2B images so that DDP
        sees one forward per backward (BatchNorm statistics therefore span both passes)."""
        image, mask, ignore = batch["image"], batch["mask"], batch["ignore"]
        disk, _ = self.encoder(batch["clicks"], image)
        emb = net(torch.cat([image, image]), torch.cat([disk, 1.0 - disk]))
        feat_obj, feat_bg = emb.float().chunk(2)
        seeds = batch["seed"].tolist()
        hard = hard_negative_region(mask, batch["others"], self.cfg.hard_band)
        return prior_loss(feat_obj, feat_bg, mask, ignore, self.cfg.patches, seeds, self.cell, self.cfg.contrast,
                          hard, self.cfg.hard_negatives)

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> tuple[float, list[float], dict[str, list[float]]]:
        """(loss, per-image AUC of cosine similarity to the click's embedding, object vs background,
        {"val_auc_distance": the same AUC for -distance to the click: what no network already scores}).
        """
        loss = float(self.loss(batch, self.trainable))
        disk, _ = self.encoder(batch["clicks"], batch["image"])
        emb = self.trainable(batch["image"], disk).float()
        h, w = emb.shape[2:]
        yy, xx = np.mgrid[0:h, 0:w]
        aucs, base = [], []
        for i in range(emb.shape[0]):
            x, y = (int(v) for v in batch["clicks"][i, 0, :2])
            sim = torch.einsum("chw,c->hw", emb[i], emb[i, :, y, x]).cpu().numpy()
            valid = batch["ignore"][i, 0].cpu().numpy() < 0.5
            obj = batch["mask"][i, 0].cpu().numpy() > 0.5
            auc = roc_auc(sim[valid], obj[valid])
            if not math.isnan(auc):
                aucs.append(auc)
                base.append(roc_auc(-np.hypot(xx - x, yy - y)[valid], obj[valid]))
        return loss, aucs, {"val_auc_distance": base}

    def export(self, path: Path, meta: dict[str, Any]) -> Path:
        return save_checkpoint(self.trainable, path, meta=meta)


class MSFNetTask:
    """Stage 2: MSFNet with the prior frozen (or the first click's disk for the ablations), NFL."""

    score_key = "val_miou1"  # validate()'s per-object score: IoU of the one-click mask

    @property
    def metric(self) -> str:
        """The held-out figure that picks the best epoch: mIoU after the robot's follow-up clicks for a
        refiner-only run (its first masks are the frozen base's), else mIoU@1."""
        return "val_miou_robot" if self.cfg.train == "refiner" else "val_miou1"

    def __init__(self, cfg: TrainConfig, prior_cfg: PriorConfig | None, msf_cfg: MSFNetConfig, device: torch.device):
        self.cfg = cfg
        if prior_cfg is not None and cfg.prior is None:
            raise InputError(f"model {cfg.model or 'segmenter'!r} takes OACE guidance: pass --prior CKPT (from `oace train prior`)")
        if prior_cfg is None and cfg.prior is not None:
            raise InputError(f"model {cfg.model!r} is a click-disk ablation: it takes no --prior")
        self.prior = load_prior(cfg.prior, prior_cfg).to(device) if prior_cfg is not None else None
        # the shipped chain: the disk rides beside the embedding (model/segmenter.py)
        self.disk_guidance = prior_cfg is not None and msf_cfg.guidance_channels == prior_cfg.embed_dim + 1
        # channels-last: 1.3x faster convolutions on the CPU (oneDNN) and on GPU tensor cores
        self.trainable: nn.Module = build("msfnet", msf_cfg, seed=cfg.seed).to(device, memory_format=torch.channels_last)
        self.encoder = SideEncoders(cfg.click_radius, device)
        self.click_stats = ClickStats()
        self.anchor = load_anchor(cfg.anchor).to(device, memory_format=torch.channels_last) if cfg.anchor else None
        if cfg.train == "refiner":
            if self.trainable.refiner is None:
                raise InputError(f"--train refiner: model {cfg.model or 'segmenter'!r} has no click refiner")
            for name, p in self.trainable.named_parameters():
                p.requires_grad_(name.startswith("refiner."))

    def backbones(self) -> dict[str, nn.Module]:
        return {"msfnet.backbone": self.trainable.backbone}

    def guidance(self, image: torch.Tensor, first_disk: torch.Tensor) -> torch.Tensor:
        if self.prior is None:
            return first_disk
        with torch.no_grad():
            embedding = self.prior(image, first_disk)
        return torch.cat([embedding, first_disk.to(embedding.dtype)], dim=1) if self.disk_guidance else embedding

    def loss(self, batch: dict[str, torch.Tensor], net: nn.Module) -> torch.Tensor:
        image, mask, ignore, clicks = batch["image"], batch["mask"], batch["ignore"], batch["clicks"]
        image = image.contiguous(memory_format=torch.channels_last)
        first, _ = self.encoder(clicks, image)
        guide = self.guidance(image, first)
        if self.cfg.train == "refiner":
            forward = simulate = self.refiner_forward(image, guide)
        else:
            forward, simulate = (lambda m: net(image, guide, m)), (lambda m: self.trainable(image, guide, m))
        prev = torch.zeros_like(mask)
        if int(batch["iterations"].max()) > 0:
            raw = self.trainable
            was_training = raw.training
            raw.eval()  # RITM simulates the clicks with the network in eval mode, under no_grad

            def predict(c: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
                return torch.sigmoid(simulate(torch.cat([self.encoder(c, image)[1], p], dim=1)))

            clicks, prev = add_iterative_clicks(predict, clicks, batch["iterations"], mask, ignore)
            set_train_mode(raw, was_training, self.cfg.bn_frozen)
        self.click_stats.add(clicks)
        _, maps = self.encoder(clicks, image)
        inputs = torch.cat([maps, prev.to(image.dtype)], dim=1)
        logits = forward(inputs)
        loss = normalized_focal_loss(logits, mask, ignore)
        if self.cfg.click_weight > 0:
            region = torch.clamp(first + maps.sum(dim=1, keepdim=True), max=1.0)
            loss = loss + self.cfg.click_weight * click_region_loss(logits, mask, region, ignore)
        if self.anchor is not None and self.cfg.anchor_weight > 0:
            loss = loss + self.cfg.anchor_weight * self.anchor_term(batch, image, first, inputs, logits)
        return loss

    def refiner_forward(self, image: torch.Tensor, guide: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """click maps -> logits for a refiner-only run: the frozen base runs once, here, without
        gradients (it reads no follow-up clicks: model/chain.py), and each call runs the refiner alone."""
        net = self.trainable
        if torch.count_nonzero(net.maps_block[0].weight):
            raise InputError("--train refiner: this MSFNet reads follow-up clicks at its stem, so its base cannot run once per "
                             "sample; start from a model without refiner (--weights), which model/chain.py converts")
        with torch.no_grad():
            zeros = guide.new_zeros((guide.shape[0], net.cfg.map_channels, *guide.shape[2:]))
            features, logits = net.base(image, guide, zeros)
        return lambda maps: net.refine(features, guide, maps, logits)

    def anchor_term(self, batch: dict[str, torch.Tensor], image: torch.Tensor, first: torch.Tensor,
                    maps: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """KL to the frozen anchor on the samples whose pass is a first click alone (one click, no
        simulated follow-ups): there the network's input is the anchor's, and its mask should stay."""
        alone = (batch["iterations"] == 0) & (batch["clicks"][:, 1:, 2] < 0).all(dim=1)
        if not bool(alone.any()):
            return 0.0 * logits.sum()
        idx = torch.nonzero(alone).flatten()
        with torch.no_grad():
            target = torch.sigmoid(self.anchor(image[idx], first[idx].to(image.dtype), maps[idx]).float())
        return anchor_loss(logits[idx], target, batch["ignore"][idx])

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> tuple[float, list[float], dict[str, list[float]]]:
        """(NFL, per-image IoU@1: one click at the interior point, probability > 0.49, ignore excluded,
        {"val_obey_pos" / "val_obey_neg": per robot follow-up click, 1.0 when the mask after it agrees
        with its label at the clicked pixel}).
        """
        image, mask, ignore = batch["image"], batch["mask"], batch["ignore"]
        first, _ = self.encoder(batch["clicks"], image)
        guide = self.guidance(image, first)

        def logits_for(c: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return self.trainable(image, guide, torch.cat([self.encoder(c, image)[1], p], dim=1)).float()

        logits = logits_for(batch["clicks"], torch.zeros_like(mask))
        loss = float(normalized_focal_loss(logits, mask, ignore))
        pred = torch.sigmoid(logits) > 0.49
        gt, valid = mask > 0.5, ignore < 0.5
        inter = (pred & gt & valid).flatten(1).sum(1).float()
        union = ((pred | gt) & valid).flatten(1).sum(1).float()
        obey = robot_obedience(lambda c, p: torch.sigmoid(logits_for(c, p)), batch["clicks"], mask, ignore, self.cfg.val_robot_clicks)
        return loss, (inter / union.clamp(min=1)).tolist(), obey

    @torch.no_grad()
    def multi_object(self, samples: list[MultiObjectSample], device: torch.device) -> dict[str, float]:
        """Click-target accuracy and containment (model/click_metrics.py) of the network being trained."""
        if not samples:
            return {}
        self.trainable.eval()

        def predict_for(image: np.ndarray):
            x = normalize(image).unsqueeze(0).to(device)
            zeros = torch.zeros(1, 1, *x.shape[2:], device=device)

            def first_click(cx: int, cy: int) -> np.ndarray:
                clicks = torch.full((1, self.cfg.clicks.max_clicks, 3), -1, dtype=torch.int32, device=device)
                clicks[0, 0] = torch.tensor([cx, cy, 1], dtype=torch.int32)
                first, maps = self.encoder(clicks, x)
                logits = self.trainable(x, self.guidance(x, first), torch.cat([maps, zeros], dim=1))
                return torch.sigmoid(logits.float())[0, 0].cpu().numpy()

            return first_click

        m = multi_object_metrics(predict_for, samples, containment_trials=3, seed=self.cfg.seed)
        return {"val_click_target": m["click_target_accuracy"], "val_containment": m["containment"],
                "val_interior_spread": m["interior_spread"]}

    def export(self, path: Path, meta: dict[str, Any]) -> Path:
        """The best weights as a full `segmenter` checkpoint (prior + msfnet) with the bundle's contract:
        512x512 input and radius-5 disks, whatever size it trained at. The networks are fully
        convolutional and training scaled the disk radius with the image (5 px at 512), so the
        weights carry over; `oace eval` / `oace export` take the checkpoint as it is."""
        msf = self.trainable
        seg_cfg = SegmenterConfig(prior=None if self.prior is None else self.prior.cfg, msfnet=msf.cfg,
                                  disk_guidance=self.disk_guidance)
        seg = build("segmenter", seg_cfg, seed=None)
        if self.prior is not None:
            seg.prior.load_state_dict(self.prior.state_dict())
        seg.msfnet.load_state_dict(msf.state_dict())
        return save_checkpoint(seg, path, meta=meta)


def set_train_mode(module: nn.Module, training: bool, freeze_bn: bool) -> None:
    module.train(training)
    if training and freeze_bn:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN without both classes."""
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def build_task(cfg: TrainConfig, device: torch.device) -> PriorTask | MSFNetTask:
    prior_cfg, msf_cfg = resolve_model(cfg)
    if cfg.stage == "prior":
        return PriorTask(cfg, prior_cfg, device)
    return MSFNetTask(cfg, prior_cfg, msf_cfg, device)


# ---------------------------------------------------------------- one step


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(
    task: PriorTask | MSFNetTask,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[dict[str, torch.Tensor]],
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
) -> float:
    """One optimizer step over `accum` micro-batches; returns this process's mean loss.

    Under DDP the gradient is averaged across processes on the last micro-batch (no_sync before),
    so the step equals one on the concatenated global batch when every process has as many samples.
    """
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    device = next(net.parameters()).device
    for k, batch in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
                loss = task.loss(batch, net) / len(micro_batches)
            (scaler.scale(loss) if scaler is not None else loss).backward()
        total += float(loss.detach())
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total


def amp_dtype(device: torch.device) -> torch.dtype:
    """--amp's autocast type: fp16 on CUDA (with a gradient scaler), bf16 on the CPU (no scaler needed:
    bf16 has fp32's exponent range)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


# ---------------------------------------------------------------- the run


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train one stage as configured; returns the summary written to train.json."""
    cfg.check()
    env = init_distributed()
    if cfg.train == "refiner" and env.world > 1:
        raise InputError("--train refiner runs in one process (its frozen base is shared by the simulated clicks); drop torchrun")
    micro, rem = divmod(cfg.batch, env.world * cfg.accum)
    if rem or micro < 1:
        raise InputError(f"--batch {cfg.batch}: must be a multiple of processes x --accum = {env.world} x {cfg.accum}")
    out = Path(cfg.out)
    last_path = out / "last.pt"
    if last_path.exists() and not cfg.resume:
        raise InputError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    if cfg.resume and not last_path.exists():
        raise InputError(f"{last_path}: nothing to resume")

    seed_everything(cfg.seed, env.rank, 0)
    datasets = open_datasets(parse_specs(cfg.data))
    train_idx, val_idx = split_indices(sum(len(d) for d in datasets), cfg.val_fraction, cfg.seed, cfg.limit)
    val_idx = val_idx[: cfg.val_max]  # held out either way; only this many are scored each epoch
    multi = cfg.stage == "msfnet"
    train_set = TrainSet(datasets, train_idx, cfg.size, cfg.clicks, seed=cfg.seed, train=True, multi_click=multi, crop=cfg.crop,
                         composite=CompositeConfig(prob=cfg.composite))
    val_set = TrainSet(datasets, val_idx, cfg.size, cfg.clicks, seed=cfg.seed, train=False, multi_click=False)
    val_multi = val_set.heldout_composites(cfg.val_composites) if multi and env.main else []
    sampler = torch.utils.data.DistributedSampler(
        train_set, num_replicas=env.world, rank=env.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=micro, sampler=sampler, num_workers=cfg.workers, drop_last=True,
        pin_memory=env.device.type == "cuda",
    )
    steps = len(loader) // cfg.accum
    if steps < 1:
        raise InputError(f"{len(train_set)} training objects give no full global batch of {cfg.batch}; lower --batch")

    task = build_task(cfg, env.device)
    init_report = None
    if cfg.init and not cfg.resume:
        from model.hrnet_init import load_imagenet_hrnet

        init_report = {name: load_imagenet_hrnet(module, cfg.init) for name, module in task.backbones().items()}
        if env.main:
            for name, rep in init_report.items():
                print(f"--init {cfg.init} -> {name}: {rep['summary']}")
    crops_seen = 0  # cumulative over the weights' whole history: fine-tuning continues the count
    if cfg.weights and not cfg.resume:
        crops_seen = load_start_weights(task, cfg.weights)
        if env.main:
            print(f"--weights {cfg.weights}: {cfg.stage} starts from these trained weights")
    params = [p for p in task.trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and env.device.type == "cuda" else None

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start = 0
    if cfg.resume:
        state = load_state(last_path)
        check_resumable(state["config"], cfg, last_path)
        task.trainable.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, best, start = list(state["history"]), state["best"], int(state["epoch"])
        crops_seen = int(history[-1].get("crops_seen", 0)) if history else 0
        if init_report is None:
            init_report = state.get("init")

    net: nn.Module = task.trainable
    if env.world > 1:
        ids = [env.device.index] if env.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(task.trainable, device_ids=ids)

    started = time.time()
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes else None
    out_of_time = False
    for epoch in range(start, cfg.epochs):
        seed_everything(cfg.seed, env.rank, epoch)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        t0 = time.time()
        set_train_mode(task.trainable, True, cfg.bn_frozen)
        losses = []
        stats = getattr(task, "click_stats", None)
        if stats is not None:
            stats.reset()
        batches = iter(loader)
        bar = _progress(steps, f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}", cfg.progress and env.main)
        for i in range(steps):
            elapsed = time.time() - started
            if budget is not None and _agree(elapsed >= budget, env):
                out_of_time = True
                break
            time_done = elapsed / budget if budget is not None else 0.0
            lr = cfg.lr * lr_factor(cfg.schedule, epoch * steps + i, cfg.epochs * steps, time_done)
            for group in optimizer.param_groups:
                group["lr"] = lr
            micro_batches = [to_device(next(batches), env.device) for _ in range(cfg.accum)]
            loss = train_step(task, net, optimizer, micro_batches, scaler, cfg.amp)
            losses.append(_mean_across(loss, env))
            crops_seen += cfg.batch
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}", crops_s=f"{len(losses) * cfg.batch / (time.time() - t0):.1f}")
        bar.close()
        if not losses:  # the budget ran out at the start of an epoch: nothing new to validate
            break
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "step_losses": losses, "steps": len(losses), "lr_end": lr,
               "crops_seen": crops_seen, "crops_per_s": round(len(losses) * cfg.batch / (time.time() - t0), 2)}
        if stats is not None:
            row.update({f"train_{k}": round(v, 4) for k, v in stats.summary().items()})
        if out_of_time:
            row["stopped"] = f"--max-minutes {cfg.max_minutes} reached after {len(losses)} of {steps} steps"
        if env.main:
            row.update(validate(task, val_set, micro, env.device, cfg.workers))
            if val_multi:
                row.update(task.multi_object(val_multi, env.device))
            row["seconds"] = round(time.time() - t0, 2)
            history.append(row)
            improved = best is None or (row.get(task.metric, -math.inf) > best["value"])
            if improved:
                best = {"epoch": epoch + 1, "metric": task.metric, "value": row.get(task.metric, -math.inf)}
            state = {
                "format": STATE_FORMAT, "config": dataclasses.asdict(cfg), "stage": cfg.stage, "epoch": epoch + 1,
                "model": task.trainable.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {}, "rng": rng_state(),
                "history": history, "best": best, "init": init_report,
            }
            save_state(state, last_path)
            if improved:
                save_state(state, out / "best.pt")
                name = "prior.pt" if cfg.stage == "prior" else "segmenter.pt"
                task.export(out / name, meta={
                    "weights": f"trained: oace train {cfg.stage}, epoch {epoch + 1}, {task.metric} {best['value']:.4f}",
                    "train_run": str(out), "epoch": epoch + 1, task.metric: best["value"], "crops_seen": crops_seen,
                })
            write_logs(out, cfg, history, best, init_report, time.time() - started)
            print(f"{cfg.stage} epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val loss "
                  f"{row.get('val_loss', float('nan')):.4f}, {task.metric} {row.get(task.metric, float('nan')):.4f}")
        if env.world > 1:
            dist.barrier()
        if out_of_time:
            if env.main:
                print(f"{cfg.stage}: --max-minutes {cfg.max_minutes} reached in epoch {epoch + 1}; saved and stopped")
            break
    summary = json_summary(cfg, history, best, init_report, time.time() - started)
    if env.world > 1:
        dist.barrier()
    return summary


def validate(task: PriorTask | MSFNetTask, val_set: TrainSet, batch: int, device: torch.device, workers: int) -> dict[str, Any]:
    if len(val_set) == 0:
        return {}
    set_train_mode(task.trainable, False, False)
    loader = torch.utils.data.DataLoader(val_set, batch_size=batch, shuffle=False, num_workers=workers)
    losses, scores, extra, n = [], [], {}, 0
    for b in loader:
        b = to_device(b, device)
        loss, s, more = task.validate(b)
        losses.append(loss * b["image"].shape[0])
        n += b["image"].shape[0]
        scores += s
        for k, v in more.items():
            extra.setdefault(k, []).extend(v)
    row = {"val_loss": float(sum(losses) / n), task.score_key: float(np.mean(scores)) if scores else float("nan"), "val_objects": n}
    row.update({k: float(np.mean(v)) for k, v in extra.items() if v})
    return row


def lr_factor(schedule: str, step: int, total_steps: int, time_done: float = 0.0) -> float:
    """Multiplier of the base learning rate at `step` of `total_steps`.

    cosine: 0.5 * (1 + cos(pi * p)), p the larger of the step fraction and `time_done` (the fraction of
    a wall-clock budget spent), so the rate reaches 0 whichever of the two ends the run first.
    """
    if schedule == "constant":
        return 1.0
    p = min(1.0, max(step / max(total_steps, 1), time_done))
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _agree(flag: bool, env: Dist) -> bool:
    """True on every process when it is true on any (all processes must stop at the same step)."""
    if env.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _mean_across(value: float, env: Dist) -> float:
    if env.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item()) / env.world


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=True, dynamic_ncols=True)


# ---------------------------------------------------------------- state files


def save_state(state: dict[str, Any], path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: not a readable training state ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an oace training state ({STATE_FORMAT})")
    return state


def check_resumable(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse a resume whose settings differ from the run's. Paths compare by what they name, not by
    their spelling (a trailing slash, ./, an absolute path); `out` not at all: the run is the folder
    holding `path`, wherever it was moved since."""
    now = dataclasses.asdict(cfg)
    diff = [k for k in now if k not in RESUMABLE_CHANGES and k != "out" and not _same_setting(k, saved.get(k), now[k])]
    if diff:
        k = diff[0]
        raise InputError(f"{path}: was trained with {k}={saved.get(k)!r}, not {now[k]!r}; resume with the same settings")


def _same_setting(key: str, saved: Any, now: Any) -> bool:
    if saved == now:
        return True
    if not (isinstance(saved, str) and isinstance(now, str)):
        return False
    if key == "data":
        a, b = parse_specs(saved), parse_specs(now)
        return len(a) == len(b) and all(x.kind == y.kind and _same_path(x.path, y.path) for x, y in zip(a, b))
    return key in PATH_SETTINGS and _same_path(saved, now)


def _same_path(a: str, b: str) -> bool:
    """Two spellings of one file or folder (names such as `reference_v1` compare as text)."""
    if os.path.normpath(a) == os.path.normpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------- logs and reports


def json_summary(cfg: TrainConfig, history: list[dict[str, Any]], best: dict[str, Any] | None,
                 init_report: Any, seconds: float) -> dict[str, Any]:
    return {
        "config": dataclasses.asdict(cfg),
        "click_radius": cfg.click_radius,
        "provenance": provenance(),
        "epochs": [{k: v for k, v in r.items() if k != "step_losses"} for r in history],
        "best": best,
        "init": init_report,
        "seconds_this_session": round(seconds, 1),
    }


def write_logs(out: Path, cfg: TrainConfig, history: list[dict[str, Any]], best: dict[str, Any] | None,
               init_report: Any, seconds: float) -> None:
    summary = json_summary(cfg, history, best, init_report, seconds)
    write_json_atomic(out / "train.json", summary)
    metric = ["val_auc", "val_auc_distance"] if cfg.stage == "prior" else ["val_miou1", "val_miou_robot", "val_obey_pos", "val_obey_neg", "val_click_target", "val_containment", "val_interior_spread"]
    cols = ["epoch", "train_loss", "val_loss", *metric, "crops_per_s", "seconds"]
    lines = [",".join(cols)] + [",".join(_fmt(r.get(c)) for c in cols) for r in history]
    write_text_atomic(out / "metrics.csv", "\n".join(lines) + "\n")
    write_text_atomic(out / "train.md", _markdown(cfg, summary, cols))
    write_events(out / "tb" / "events.out.tfevents.oace", history, cols[1:-2])
    plot_curves(out / "curves.png", history, cols[1:-2])


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v))


def _markdown(cfg: TrainConfig, summary: dict[str, Any], cols: list[str]) -> str:
    best = summary["best"] or {}
    text = [
        f"# oace train {cfg.stage}: {cfg.out}\n",
        f"- data: `{cfg.data}`; size {cfg.size}{f', random {cfg.crop}x{cfg.crop} crops' if cfg.crop else ''} (click disk radius {cfg.click_radius} px); "
        f"global batch {cfg.batch} (accum {cfg.accum}); Adam lr {cfg.lr}; seed {cfg.seed}",
        f"- model: {cfg.model or ('prior' if cfg.stage == 'prior' else 'segmenter')}; prior: {cfg.prior}; init: {cfg.init}"
        + (f"; contrast: {cfg.contrast}" if cfg.stage == "prior" else ""),
        f"- best: {best.get('metric')} {best.get('value')} at epoch {best.get('epoch')}",
        f"- toolkit {summary['provenance']['versions'].get('oace-toolkit')}, git {summary['provenance']['git_sha']}\n",
        markdown_table(cols, [[_fmt(r.get(c)) for c in cols] for r in summary["epochs"]]),
    ]
    return "\n".join(text)


def write_events(path: Path, history: list[dict[str, Any]], tags: list[str]) -> None:
    """TensorBoard scalars, one file rewritten from the whole history (consistent after a resume).

    Written with tensorboard's protobufs and record writer only: torch.utils.tensorboard would
    import TensorFlow (seconds, and noise) where it is installed.
    """
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    writer = RecordWriter(buf)
    writer.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    for r in history:
        values = [Summary.Value(tag=t, simple_value=float(r[t])) for t in tags if r.get(t) is not None]
        writer.write(Event(wall_time=time.time(), step=int(r["epoch"]), summary=Summary(value=values)).SerializeToString())
        for i, loss in enumerate(r.get("step_losses", [])):
            step = (int(r["epoch"]) - 1) * len(r["step_losses"]) + i
            ev = Event(wall_time=time.time(), step=step, summary=Summary(value=[Summary.Value(tag="step_loss", simple_value=float(loss))]))
            writer.write(ev.SerializeToString())
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def plot_curves(path: Path, history: list[dict[str, Any]], tags: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(4 * len(tags), 3))
    epochs = [r["epoch"] for r in history]
    for ax, tag in zip(np.atleast_1d(axes), tags):
        ax.plot(epochs, [r.get(tag, float("nan")) for r in history], marker="o")
        ax.set_title(tag)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
