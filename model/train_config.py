"""The settings of a training run (`oace train`): one flat, frozen record, stored as is in every
training state (last.pt / best.pt), and checked before anything runs."""

from __future__ import annotations

import dataclasses

from oace.model.losses import CONTRASTS, PatchSampling, cell_size
from oace.model.train_clicks import ClickSimConfig
from oace.errors import InputError

STAGES = ("prior", "msfnet")
TRAIN_PARTS = ("all", "refiner")
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
    def patch_sampling(self) -> PatchSampling:
        """The prior stage's patch draw: --patches per kind from cells of 8 px at 512 (scaled), --contrast,
        a --hard-negatives share of the background patches from the hard-negative region."""
        return PatchSampling(patches=self.patches, cell=cell_size(self.size), contrast=self.contrast,
                             hard_share=self.hard_negatives)

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
