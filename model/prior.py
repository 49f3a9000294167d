"""The OACE prior network: image + click disk -> object-aware click embedding (paper Sec. 3.1).

HRNetV2-W18-Small-v2 backbone (4 input channels: normalized RGB + binary click disk) and a decoder
of three upsampling + conv blocks. The decoder walks up the HRNet pyramid (stride 32 -> 16 -> 8 -> 4),
each block upsampling by 2 and fusing the backbone branch of that stride, so every branch reaches
the embedding (the HRNetV2 idea) while the heavy convolutions stay at low resolution. A 1x1
projection gives `embed_dim` channels, which are L2-normalized per pixel (the contrastive loss is
a cosine similarity, and a bounded [-1, 1] range quantizes well) and upsampled by 4 to the input
size. See docs/architecture.md for the choice of embed_dim.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from oace.model.hrnet import HRNET_W18_SMALL_V2, HRNetConfig, build_hrnet, conv_bn_relu, upsample


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    backbone: HRNetConfig = dataclasses.replace(HRNET_W18_SMALL_V2, in_channels=4)
    decoder_widths: tuple[int, int, int] = (208, 128, 64)
    embed_dim: int = 16


class UpBlock(nn.Module):
    """Upsample the coarser features by 2, concatenate the skip branch, two 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(conv_bn_relu(cin + cskip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([upsample(x, 2), skip], dim=1))


class OACEPrior(nn.Module):
    """forward(image, disk) -> embedding.

    image: float [B, 3, H, W], ImageNet-normalized RGB; H, W divisible by 32.
    disk:  float [B, 1, H, W], 1 inside the click disk (or, for the second training pass, outside it).
    returns float [B, embed_dim, H, W], per-pixel unit vectors (up to bilinear interpolation).
    """

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        if cfg.backbone.in_channels != 4:
            raise ValueError("the prior's backbone takes 4 input channels (RGB + click disk)")
        self.cfg = cfg
        self.backbone = build_hrnet(cfg.backbone)
        w = cfg.backbone.widths
        d1, d2, d3 = cfg.decoder_widths
        self.up1 = UpBlock(w[3], w[2], d1)  # stride 32 -> 16
        self.up2 = UpBlock(d1, w[1], d2)  # stride 16 -> 8
        self.up3 = UpBlock(d2, w[0], d3)  # stride 8 -> 4
        self.project = nn.Conv2d(d3, cfg.embed_dim, 1)

    def forward(self, image: torch.Tensor, disk: torch.Tensor) -> torch.Tensor:
        return self.embed(torch.cat([image, disk], dim=1))

    def embed(self, image_and_disk: torch.Tensor) -> torch.Tensor:
        """forward() on the already stacked input [B, 4, H, W] (the bundle stacks it channels-last)."""
        f4, f8, f16, f32 = self.backbone(image_and_disk)
        x = self.up3(self.up2(self.up1(f32, f16), f8), f4)
        return upsample(unit_length(self.project(x)), 4)


def unit_length(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """F.normalize(x, dim=1, eps=eps) written as x * rsqrt(max(sum(x^2), eps^2)): the same values, but
    the norm broadcasts by a plain multiply; F.normalize's export expands it to x's shape, which
    onnx2tf stores as a constant of ones (262 KB of the int8 bundle at 512)."""
    return x * torch.rsqrt(torch.clamp((x * x).sum(dim=1, keepdim=True), min=eps * eps))


def build_prior(cfg: PriorConfig) -> OACEPrior:
    return OACEPrior(cfg)
