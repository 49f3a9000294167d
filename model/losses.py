"""Training losses: the OACE contrastive loss (paper Eq. 1) and the Normalized Focal Loss (Eq. 2-3).

Contrastive loss, normalized. Eq. 1 sums cosine similarities over all pairs, so its size grows with
the number of patches (n^2 + m^2 + n*m terms) and the balance of its three terms depends on n and m.
We use the mean of each term instead, over distinct pairs (no self-pairs, whose cosine is always 1):

    L = - mean_{i != j} cos(o_i, o_j) - mean_{i != j} cos(b_i, b_j) + mean_{i, j} cos(o_i, b_j)

so L lies in [-3, 3] whatever the patch counts; it is Eq. 1 with each sum divided by its number of
pairs. It is computed per image (the embedding says "this object" versus "the rest of this
image", for one click) and averaged over the images of the batch that have >= 2 patches of each.

Background patches: `contrast="paper"` takes them from pass 2 only, as Eq. 1 is written. That
loss has a shortcut: object patches always come from pass 1 (input D) and background patches
from pass 2 (input 1 - D), so a network that outputs v for one input disk layout and -v for the
other reaches the global minimum, -3, without looking at the image. Measured here (ECSSD, 64 px,
3 epochs): training loss -2.99 while, within pass 1 (the only pass used at inference), object and
background embeddings had cosine 0.99. `contrast="within"` (the default) also draws the same
background cells from pass 1 (features x (1 - M)): background of both passes must agree and the
object must differ from the background of its own pass, so the pass indicator no longer helps and
only separating the object from its own background lowers the loss.

Normalized Focal Loss (RITM's NormalizedFocalLossSigmoid without its alpha = 0.5 factor): per image,
with p the probability of the true class and w = (1 - p)^gamma,

    NFL = sum_{k,l} w * (-log p) / P,   P = sum_{k,l} w   (Eq. 2-3)

where P is detached from the graph (it rescales the loss, it is not optimized) and ignored pixels
take no part in either sum. The batch loss is the mean over images.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

CONTRASTS = ("within", "paper")


def contrastive_loss(obj: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """Eq. 1, normalized by pair counts. obj: [n, C], bg: [m, C] patch features (any length), n, m >= 2."""
    if obj.shape[0] < 2 or bg.shape[0] < 2:
        raise ValueError(f"contrastive_loss needs >= 2 patches of each kind, got {obj.shape[0]} object, {bg.shape[0]} background")
    o = F.normalize(obj, dim=1, eps=1e-6)
    b = F.normalize(bg, dim=1, eps=1e-6)
    return -_mean_offdiag(o @ o.T) - _mean_offdiag(b @ b.T) + (o @ b.T).mean()


def _mean_offdiag(sim: torch.Tensor) -> torch.Tensor:
    n = sim.shape[0]
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


def cell_size(size: int) -> int:
    """Side of the pooled cells patches are drawn from: 8 px at 512, scaled with the input side."""
    return max(1, round(8 * size / 512))


@dataclasses.dataclass(frozen=True)
class PatchSampling:
    """How `sample_patches` draws cells: up to `patches` of each kind per image, from cell x cell
    cells at least `min_coverage` inside their region; `contrast` as in the module docstring;
    `hard_share` of the background patches from the hard-negative region."""

    patches: int
    cell: int
    min_coverage: float = 0.5
    contrast: str = "within"
    hard_share: float = 0.0

    def __post_init__(self) -> None:
        if self.contrast not in CONTRASTS:
            raise ValueError(f"contrast {self.contrast!r}: expected one of {', '.join(CONTRASTS)}")


def sample_patches(
    feat_obj: torch.Tensor,
    feat_bg: torch.Tensor,
    mask: torch.Tensor,
    ignore: torch.Tensor,
    seeds: list[int],
    sampling: PatchSampling,
    hard: torch.Tensor | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """Random object / background patches per image (paper Sec. 3.1).

    feat_obj: [B, C, H, W] pass-1 features (image + disk D); feat_bg: pass-2 features (image + 1 - D).
    mask, ignore: [B, 1, H, W] float 0/1. Features are multiplied by M (pass 1) and 1 - M (pass 2),
    average-pooled over cell x cell cells, and up to `patches` cells are drawn per image among those
    at least `min_coverage` inside M (object) or inside 1 - M (background), ignored pixels excluded.
    seeds: one per image, so the draw of an image does not depend on its batch or rank.
    contrast="within" appends the pass-1 features of the same background cells to bg (see above).
    hard: [B, 1, H, W] 0/1, the hard-negative region (other objects, a band around the object):
    up to round(hard_share * patches) background cells are drawn among the cells at least
    `min_coverage` inside it, the rest among all background cells (no cell twice).
    Returns per image (obj [n, C], bg [m, C]), or None when it has < 2 cells of either kind.
    """
    cell, patches, min_coverage, hard_share = sampling.cell, sampling.patches, sampling.min_coverage, sampling.hard_share
    valid = 1.0 - ignore
    m_obj = mask * valid
    m_bg = (1.0 - mask) * valid
    pooled_obj = F.avg_pool2d(feat_obj * m_obj, cell)
    pooled_bg = F.avg_pool2d(feat_bg * m_bg, cell)
    pooled_bg_within = F.avg_pool2d(feat_obj * m_bg, cell) if sampling.contrast == "within" else None
    cov_obj = F.avg_pool2d(m_obj, cell).flatten(1)
    cov_bg = F.avg_pool2d(m_bg, cell).flatten(1)
    cov_hard = F.avg_pool2d(hard * m_bg, cell).flatten(1) if hard is not None and hard_share > 0 else None
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = []
    for i, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(int(seed))
        picked = []
        for pooled, cov in ((pooled_obj, cov_obj), (pooled_bg, cov_bg)):
            idx = torch.nonzero(cov[i] >= min_coverage).flatten().cpu()
            if idx.numel() < 2:
                break
            if cov is cov_bg and cov_hard is not None:
                idx = _hard_first(idx, cov_hard[i].cpu()[idx] >= min_coverage, round(hard_share * patches), gen)
            else:
                idx = idx[torch.randperm(idx.numel(), generator=gen)]
            idx = idx[:patches].to(pooled.device)
            picked.append(pooled[i].flatten(1)[:, idx].T)  # [k, C]
            bg_idx = idx
        if len(picked) < 2:
            out.append(None)
            continue
        if pooled_bg_within is not None:
            picked[1] = torch.cat([picked[1], pooled_bg_within[i].flatten(1)[:, bg_idx].T])
        out.append((picked[0], picked[1]))
    return out


def _hard_first(idx: torch.Tensor, is_hard: torch.Tensor, n_hard: int, gen: torch.Generator) -> torch.Tensor:
    """idx reordered: up to n_hard random hard cells first, then the other cells in random order."""
    hard, easy = idx[is_hard], idx[~is_hard]
    hard = hard[torch.randperm(hard.numel(), generator=gen)]
    rest = torch.cat([hard[n_hard:], easy])
    return torch.cat([hard[:n_hard], rest[torch.randperm(rest.numel(), generator=gen)]])


def hard_negative_region(mask: torch.Tensor, others: torch.Tensor, band: int) -> torch.Tensor:
    """Other objects plus a `band`-pixel ring around the object: where a lazy embedding confuses
    object and background. mask, others: [B, 1, H, W] 0/1."""
    ring = F.max_pool2d(mask.float(), 2 * band + 1, stride=1, padding=band) - mask.float() if band > 0 else torch.zeros_like(mask)
    return torch.clamp(others.float() + ring, max=1.0) * (1.0 - mask.float())


def prior_loss(
    feat_obj: torch.Tensor,
    feat_bg: torch.Tensor,
    mask: torch.Tensor,
    ignore: torch.Tensor,
    seeds: list[int],
    sampling: PatchSampling,
    hard: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean per-image contrastive loss over `sample_patches`' pairs; 0 (still attached to the graph)
    when no image has patches."""
    pairs = sample_patches(feat_obj, feat_bg, mask, ignore, seeds, sampling, hard)
    losses = [contrastive_loss(o, b) for pair in pairs if pair is not None for o, b in [pair]]
    if not losses:
        return 0.0 * (feat_obj.sum() + feat_bg.sum())
    return torch.stack(losses).mean()


def normalized_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None, gamma: float = 2.0, eps: float = 1e-8
) -> torch.Tensor:
    """Eq. 2-3. logits, target (0/1), ignore (0/1): [B, 1, H, W]. Returns the mean over images."""
    logits = logits.float()
    sign = 2.0 * target.float() - 1.0
    log_p = F.logsigmoid(logits * sign)  # log of the probability of the true class
    w = torch.sigmoid(-logits * sign) ** gamma  # (1 - p)^gamma
    valid = torch.ones_like(w) if ignore is None else 1.0 - ignore.float()
    w = w * valid
    norm = w.sum(dim=(1, 2, 3)).detach()  # P(M^), Eq. 3, detached
    per_image = (w * -log_p).sum(dim=(1, 2, 3)) / (norm + eps)
    return per_image.mean()


def click_region_loss(
    logits: torch.Tensor, target: torch.Tensor, region: torch.Tensor, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy averaged over the pixels of `region` (the disks around the clicks), per
    image, then over the images that have any such pixel (0, still attached, when none has).

    The normalized focal loss spreads its weight over all hard pixels of the image; an 81-pixel
    negative click disk is a sliver of that, so a network can ignore the click maps and lose
    almost nothing (docs/training.md, "Why negative clicks were ignored"). This term makes every
    clicked pixel count as much as a whole image: the mask must agree with the ground truth where
    the user tapped. logits, target, region, ignore: [B, 1, H, W]; region and ignore 0/1.
    """
    logits = logits.float()
    weight = region.float() * (1.0 if ignore is None else 1.0 - ignore.float())
    bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    area = weight.sum(dim=(1, 2, 3))
    per_image = (bce * weight).sum(dim=(1, 2, 3)) / area.clamp(min=1.0)
    has = area > 0
    if not bool(has.any()):
        return 0.0 * logits.sum()
    return per_image[has].mean()


def anchor_loss(logits: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-pixel KL divergence KL(target || sigmoid(logits)) of two Bernoulli masks, per image,
    then over the batch: 0 when the network reproduces the target probabilities exactly.

    Learning without forgetting: a fine-tune that teaches corrections keeps a trained model's
    first-click masks by matching its probabilities where the input is the same (MSFNetTask.anchor_term).
    logits, target (probabilities), ignore: [B, 1, H, W].
    """
    logits = logits.float()
    t = target.float().clamp(1e-6, 1 - 1e-6)
    entropy = -(t * torch.log(t) + (1 - t) * torch.log1p(-t))
    kl = F.binary_cross_entropy_with_logits(logits, t, reduction="none") - entropy
    weight = torch.ones_like(kl) if ignore is None else 1.0 - ignore.float()
    per_image = (kl * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp(min=1.0)
    return per_image.mean()
