"""The settings of a training run (`oace train`): one flat, frozen record, stored as is in every
training state (last.pt / best.pt), and checked before anything runs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from oace.errors import InputError

if TYPE_CHECKING:  # imported where used: the CLI reads these fields without loading PyTorch
    from oace.model.losses import PatchSampling
    from oace.model.train_clicks import ClickSimConfig

STAGES = ("prior", "msfnet")
TRAIN_PARTS = ("all", "refiner")
SCHEDULES = ("constant", "cosine")
# settings that name files or folders: compared by identity on resume
PATH_SETTINGS = ("prior", "init", "weights", "anchor")


def option(help: str, default: Any = dataclasses.MISSING, **cli: Any) -> Any:
    """A setting with its `oace train` help; `cli`: "flag" (another option name), "choices", "metavar",
    "positional". oace/commands/train.py builds the options from these fields (oace.commands.options)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    stage: str = option("prior: contrastive OACE prior; msfnet: MSFNet with the prior frozen",
                        positional=True, choices=STAGES)
    data: str = option("kind:path[,kind:path], e.g. "
                       "salient:../shared/data-train/ECSSD,yolo_seg:../shared/data/coco128-seg", metavar="KIND:PATH[,...]")
    out: str = option("run directory (checkpoints, metrics, reports)", metavar="DIR")
    epochs: int = option("total epochs (a resumed run continues up to this number)", 1)
    batch: int = option("global batch over all processes and accumulation steps", 64)
    accum: int = option("gradient accumulation steps", 1)
    lr: float = option("Adam learning rate", 5e-4)
    size: int = option("training side, a multiple of 32", 512)
    crop: int | None = option("train on random CROP x CROP windows of the --size image (same pixel scale, less compute); "
                              "validation sees whole images", None)
    model: str | None = option("architecture preset (`oace models`; default: prior / segmenter); e.g. segmenter_disk, "
                               "segmenter_baseline, segmenter_tiny", None, flag="preset", metavar="NAME")
    prior: str | None = option("prior checkpoint (prior.pt of a prior run) for the msfnet stage (OACE guidance)", None,
                                metavar="CKPT")
    init: str | None = option("timm ImageNet HRNet checkpoint (.pth/.safetensors) for the backbone", None,
                              metavar="PATH")
    weights: str | None = option("start from trained weights (fine-tune): prior.pt for the prior stage, segmenter.pt for msfnet", None,
                                  metavar="CKPT")
    schedule: str = option("learning rate: constant, or cosine decay to 0 over the run (or over --max-minutes, whichever "
                           "ends first)", "constant", choices=SCHEDULES)
    max_minutes: float | None = option("wall-clock budget for the training steps; when spent, the epoch ends early, is "
                                       "validated and saved, and the run stops", None)
    resume: bool = option("continue the run in --out from its last finished epoch", False)
    val_fraction: float = option("held-out share of the objects", 0.05)
    # 5 % of COCO+LVIS would be ~100k validation objects: hence the cap
    val_max: int | None = option("score at most this many held-out objects per epoch", 2000)
    seed: int = option("everything random derives from it", 0)
    workers: int = option("DataLoader workers per process", 0)
    amp: bool = option("mixed precision: fp16 autocast + gradient scaler on CUDA, bf16 autocast on the CPU", False)
    click_weight: float = option("msfnet stage: weight of the cross-entropy on the clicked disks, so every tap counts "
                                 "(0 = NFL only; losses.click_region_loss)", 1.0)
    anchor: str | None = option("msfnet stage: a click-disk segmenter (checkpoint or name, e.g. reference_v1) whose "
                                "first-click masks the fine-tune keeps (learning without forgetting)", None, metavar="CKPT")
    anchor_weight: float = option("msfnet stage: weight of the KL to --anchor's first-click probabilities "
                                  "(losses.anchor_loss)", 10.0)
    val_robot_clicks: int = option("msfnet stage: robot follow-up clicks per held-out object, scored for obedience", 2)
    val_composites: int = option("msfnet stage: held-out multi-object composites scored each epoch for click-target "
                                 "accuracy and containment", 12)
    composite: float = option("share of training items made copy-paste composites: 1-3 salient objects pasted on "
                              "another image, the click picks one (model/composite.py)", 0.5)
    hard_negatives: float = option("prior stage: share of background patches drawn from other objects and a band "
                                   "around the object", 0.5)
    limit: int | None = option("use only this many objects (smoke runs)", None)
    patches: int = option("prior stage: patches of each kind per image", 64)
    contrast: str = option("prior stage: within (background patches from both passes) or paper (pass 2 only, as Eq. 1 "
                           "is written; model/losses.py); see docs/training.md", "within")
    freeze_bn: bool = option("BatchNorm in eval mode: keep the start weights' statistics when fine-tuning with small "
                             "batches of crops (and exact DDP-vs-single comparisons)", False)
    train: str = option("msfnet stage: train all weights, or the click refiner only, the rest frozen and run once per "
                        "sample (model/refiner.py)", "all", choices=TRAIN_PARTS)
    max_iterative: int = option("msfnet stage: at most this many simulated iterative clicks per training sample "
                                "(RITM: 3)", 3)
    progress: bool = option("tqdm progress bars", True)

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
        from oace.model.train_clicks import ClickSimConfig

        s = self.size / 512
        return ClickSimConfig(margin=round(3 * s), band=max(2, round(40 * s)), max_iterative=self.max_iterative)

    @property
    def patch_sampling(self) -> PatchSampling:
        """The prior stage's patch draw: --patches per kind from cells of 8 px at 512 (scaled), --contrast,
        a --hard-negatives share of the background patches from the hard-negative region."""
        from oace.model.losses import PatchSampling, cell_size

        return PatchSampling(patches=self.patches, cell=cell_size(self.size), contrast=self.contrast,
                             hard_share=self.hard_negatives)

    @property
    def bn_frozen(self) -> bool:
        """BatchNorm in eval mode: asked for, or implied by a refiner-only run (the base is frozen)."""
        return self.freeze_bn or self.train == "refiner"

    def check(self) -> None:
        from oace.model.losses import CONTRASTS

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
