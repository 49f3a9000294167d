"""The click refiner: a late path that makes every tap count (issue 16, docs/architecture.md).

In MSFNet as trained so far, follow-up clicks (positive, negative) and the previous mask entered
only at the stem, 1/64 of the fused input, and had to survive the whole HRNet to change the mask:
the trained reference ignored them (docs/training.md, "Why negative clicks were ignored"). The
refiner reads them next to the output instead:

    head features (stride 4, after BatchNorm + ReLU) -- 1x1 reduce --------------\
    guidance (OACE + first disk), click maps: max- and average-pooled to stride 4 -+- concat
    base probabilities, average-pooled --------------------------------------------/
    -> 3x3 conv -> residual dilated 3x3 convs (dilation 1, 2, 4, 8, 16: a 250 px field at 512)
    -> 1x1 over the body's output and its inputs -> a logit correction at stride 4,
    x4 bilinear, added to the base logits

Its last convolution starts at zero, so a model that gains a refiner computes exactly what it
computed before (model/chain.py) until training moves it. It acts on follow-up clicks only: on a
first click (all maps zero) its correction is multiplied by zero, so the first mask is the base
network's. Trained on first clicks too, it cost 4.5 points of Berkeley mIoU@1 (44.5 vs 49.0, PyTorch). It has no BatchNorm: it trains in the
same mode it runs in, on small CPU batches, and the base network's statistics stay untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oace.model.hrnet import upsample

STRIDE = 4  # the head features' stride


class ClickRefiner(nn.Module):
    """forward(features, guidance, click_maps, base_logits) -> corrected logits.

    features:    [B, feature_channels, H/4, W/4]: the segmentation head's stride-4 features. Not
                 the HRNet aggregate the head reads: those are unnormalized (values in the
                 hundreds next to 0/1 click disks), and a refiner fed them did not learn
    guidance:    [B, G, H, W]: the OACE embedding and/or the first click's disk (disk last)
    click_maps:  [B, 3, H, W]: follow-up positive disks, negative disks, previous mask
    base_logits: [B, 1, H, W]: the segmentation head's logits
    """

    def __init__(self, feature_channels: int, guidance_channels: int, width: int, dilations: tuple[int, ...]):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(feature_channels, width // 2, 1), nn.ReLU(inplace=True))
        clicks = guidance_channels + 3  # guidance and click maps, pooled by max and by average
        cin = width // 2 + 2 * clicks + 1
        self.stem = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations)
        # reads the body and, directly, its inputs: a tap's disk reaches the output through one linear
        # map from the first step (a plain stack of six random ReLU convs fades it out; it did not learn)
        self.register_buffer("map_sum", torch.ones(1, 3, 1, 1), persistent=False)  # sums the click maps' peaks
        self.correction = nn.Conv2d(width + cin, 1, 1)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)

    def forward(self, features: torch.Tensor, guidance: torch.Tensor, click_maps: torch.Tensor,
                base_logits: torch.Tensor) -> torch.Tensor:
        # whole tensors only: a channel slice costs two layout transposes in the TFLite graph
        clicks = torch.cat([guidance, click_maps], dim=1).to(features.dtype)
        x = torch.cat([
            self.reduce(features),
            F.max_pool2d(clicks, STRIDE),  # a disk never vanishes in the pooling
            F.avg_pool2d(clicks, STRIDE),  # the embedding and the previous mask, smoothly
            F.avg_pool2d(torch.sigmoid(base_logits).to(features.dtype), STRIDE),
        ], dim=1)
        h = self.stem(x)
        for conv in self.blocks:  # residual: the signal keeps its strength through the dilations
            h = h + F.relu(conv(h))
        correction = upsample(self.correction(torch.cat([h, x], dim=1)), STRIDE)
        # 0 on a first click (no follow-up disk, no previous mask: the maps are all zero), else 1:
        # the first click's mask is the base network's, exactly; the refiner corrects what follows.
        # Each map's peak by a global max pool, their sum by a fixed 1x1 conv: a reduction over all
        # axes of the NCHW maps cost layout transposes in the TFLite graph
        peaks = F.adaptive_max_pool2d(click_maps.to(correction.dtype), 1)  # [B, 3, 1, 1]
        follow_up = torch.clamp(F.conv2d(peaks, self.map_sum.to(peaks.dtype)), max=1.0)  # [B, 1, 1, 1]
        return base_logits + follow_up * correction
