"""What each stage trains and how it scores (issue 6): `PriorTask`, the OACE prior's contrastive
training (Eq. 1), and `MSFNetTask`, MSFNet with the prior frozen (Eq. 2-3), built from a run's
settings by `build_task`; the networks a run loads (a prior, an anchor, start weights)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from oace.model.chain import start_state
from oace.model.click_maps import ClickEncoder
from oace.model.click_metrics import MultiObjectSample, multi_object_metrics
from oace.model.losses import anchor_loss, click_region_loss, hard_negative_region, normalized_focal_loss, prior_loss
from oace.model.msfnet import MSFNetConfig
from oace.model.prior import OACEPrior, PriorConfig
from oace.model.registry import PRESETS, build, load_model, load_model_with_meta, save_checkpoint
from oace.model.segmenter import Segmenter, SegmenterConfig
from oace.model.train_clicks import ClickStats, add_iterative_clicks, robot_obedience
from oace.model.train_config import TrainConfig
from oace.model.train_data import normalize
from oace.errors import CheckpointError, InputError


def resolve_model(cfg: TrainConfig) -> tuple[PriorConfig | None, MSFNetConfig | None]:
    """The preset named by cfg.model -> (prior config, msfnet config) of the stage being trained."""
    name = cfg.model or ("prior" if cfg.stage == "prior" else "segmenter")
    if name not in PRESETS:
        raise InputError(f"--preset {name!r}: unknown preset; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if cfg.stage == "prior":
        if preset.arch == "prior":
            return preset.config, None
        if preset.arch == "segmenter" and preset.config.prior is not None:
            return preset.config.prior, None
        raise InputError(f"--preset {name!r} has no OACE prior to train")
    if preset.arch == "msfnet":
        return (PriorConfig() if preset.config.guidance_channels != 1 else None), preset.config
    if preset.arch == "segmenter":
        return preset.config.prior, preset.config.msfnet
    raise InputError(f"--preset {name!r} is a {preset.arch}, not an MSFNet")


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
    from oace.model.reference import resolve_checkpoint

    model = load_model(resolve_checkpoint(path))
    if not isinstance(model, Segmenter) or model.prior is not None:
        raise CheckpointError(f"{path}: --anchor takes a click-disk segmenter checkpoint (no prior)")
    return _frozen(model.msfnet)


def load_start_weights(task: Task, path: str) -> int:
    """Load trained weights into the network a stage trains (fine-tuning; the optimizer starts fresh).

    Prior stage: a prior checkpoint, or the prior of a segmenter. MSFNet stage: the MSFNet of a
    segmenter checkpoint; the architecture must be the one this run builds, except that a click-disk
    model's MSFNet may start the chained one (OACE + disk guidance): its guidance readers are widened
    with zero columns for the embedding (model/chain.py), a function-preserving start. Returns the crops the
    weights have seen (their meta's `crops_seen`, 0 when not recorded).
    """
    from oace.model.reference import resolve_checkpoint

    loaded = load_model_with_meta(resolve_checkpoint(path))
    model, seen = loaded.model, int(loaded.meta.get("crops_seen", 0))
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
    click_stats: ClickStats | None = None  # the prior stage simulates no follow-up clicks

    def __init__(self, cfg: TrainConfig, prior_cfg: PriorConfig, device: torch.device):
        self.cfg = cfg
        self.net: nn.Module = build("prior", prior_cfg, seed=cfg.seed).to(device)
        self.trainable = self.net
        self.encoder = SideEncoders(cfg.click_radius, device)
        self.sampling = cfg.patch_sampling

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
        return prior_loss(feat_obj, feat_bg, mask, ignore, seeds, self.sampling, hard)

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
            raise InputError(f"--preset {cfg.model or 'segmenter'!r} takes OACE guidance: pass --prior CKPT (from `oace train prior`)")
        if prior_cfg is None and cfg.prior is not None:
            raise InputError(f"--preset {cfg.model!r} is a click-disk ablation: it takes no --prior")
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
                raise InputError(f"--train refiner: --preset {cfg.model or 'segmenter'!r} has no click refiner")
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
        """(NFL, per-image IoU@1: one click at the interior point, probability > the mask threshold, ignore excluded,
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
        pred = torch.sigmoid(logits) > SegmenterConfig.mask_threshold
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


Task = PriorTask | MSFNetTask


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


def build_task(cfg: TrainConfig, device: torch.device) -> Task:
    prior_cfg, msf_cfg = resolve_model(cfg)
    if cfg.stage == "prior":
        return PriorTask(cfg, prior_cfg, device)
    return MSFNetTask(cfg, prior_cfg, msf_cfg, device)
