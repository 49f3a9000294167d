"""MSFNet: the Multi-Stage Fusion interactive segmentation network (paper Sec. 3.2, Fig. 1b).

    image ---- stem conv1 (3->64, /2) ----\
                                            concat -> 1x1 conv (late fusion) -+-> HRNet-W18 (stem conv2, stages 1-4)
    guidance - guide block (G->64, /2) ---/                                   |        |
    click maps - 1x1 -> 3x3 /2 -> x scale (RITM "Conv1S", added here) ------/   HRNetV2 aggregate (270 ch, /4)
                                                                                       |
    guidance - MSF module: conv block (/4) -> 3 x SE-Inception ----------------------concat
                                                                                       |
                                                              segmentation head (conv, x2 up, conv, x2 up) -> logits
                                                                                       |
    guidance, click maps, the head's stride-4 features - click refiner (model/refiner.py, optional) -> corrected logits

guidance is the OACE embedding (16 channels) in the paper's model, or the first click's binary
disk (1 channel) in the ablations. click maps are 3 channels: follow-up positive clicks, negative
clicks, and the previous mask; with a single click they are all zero, so one-click behaviour is
the paper's. The ablation "Baseline" has no MSF module.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from oace.model.hrnet import HRNET_W18, HRNetConfig, aggregate, build_hrnet, conv_bn_relu, upsample
from oace.model.refiner import ClickRefiner


@dataclasses.dataclass(frozen=True)
class MSFNetConfig:
    backbone: HRNetConfig = HRNET_W18
    guidance_channels: int = 16  # OACE embed_dim, or 1 for a click disk
    use_msf: bool = True
    msf_width: int = 96
    msf_blocks: int = 3
    map_channels: int = 3  # positive clicks, negative clicks, previous mask
    head_widths: tuple[int, int, int] = (128, 96, 32)
    refiner_width: int = 0  # > 0: a click refiner on the head's features (model/refiner.py); 0: none (v1)
    refiner_dilations: tuple[int, ...] = (1, 2, 4, 8, 16)


class ScaleLayer(nn.Module):
    """Multiply by a learned scalar (RITM starts the click-map branch small, at 0.05)."""

    def __init__(self, init: float = 0.05):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class SEInceptionBlock(nn.Module):
    """Inception branches (1x1, 3x3, 5x5 as two 3x3, pool) -> concat -> SE recalibration -> residual."""

    def __init__(self, width: int):
        super().__init__()
        b = width // 4
        self.branch1 = conv_bn_relu(width, b, 1)
        self.branch3 = nn.Sequential(conv_bn_relu(width, b, 1), conv_bn_relu(b, b))
        self.branch5 = nn.Sequential(conv_bn_relu(width, b, 1), conv_bn_relu(b, b), conv_bn_relu(b, b))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(width, width - 3 * b, 1))
        self.se = SqueezeExcite(width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)
        return self.relu(x + self.se(y))


class MultiStageFusion(nn.Module):
    """The MSF module: a conv block bringing the guidance to stride 4, then SE-Inception blocks."""

    def __init__(self, cin: int, width: int, blocks: int):
        super().__init__()
        self.conv = nn.Sequential(conv_bn_relu(cin, width // 2, stride=2), conv_bn_relu(width // 2, width, stride=2))
        self.blocks = nn.Sequential(*(SEInceptionBlock(width) for _ in range(blocks)))

    def forward(self, guidance: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv(guidance))


class SegmentationHead(nn.Module):
    """Stride-4 features -> 1x1 conv -> 3x3 conv -> x2 -> 3x3 conv -> 1x1 to logits -> x2 (input size)."""

    def __init__(self, cin: int, widths: tuple[int, int, int]):
        super().__init__()
        w1, w2, w3 = widths
        self.reduce = conv_bn_relu(cin, w1, 1)
        self.conv_quarter = conv_bn_relu(w1, w2)
        self.conv_half = conv_bn_relu(w2, w3)
        self.classify = nn.Conv2d(w3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.quarter(x))

    def quarter(self, x: torch.Tensor) -> torch.Tensor:
        """The head's stride-4 features (BatchNorm + ReLU: bounded, what the click refiner reads)."""
        return self.conv_quarter(self.reduce(x))

    def logits(self, quarter: torch.Tensor) -> torch.Tensor:
        x = self.conv_half(upsample(quarter, 2))
        return upsample(self.classify(x), 2)


class MSFNet(nn.Module):
    """forward(image, guidance, click_maps) -> mask logits.

    image:      float [B, 3, H, W], ImageNet-normalized RGB; H, W divisible by 32.
    guidance:   float [B, guidance_channels, H, W]: the OACE embedding or a click disk.
    click_maps: float [B, map_channels, H, W]: follow-up positive / negative click disks, previous mask.
    returns     float [B, 1, H, W] logits.
    """

    def __init__(self, cfg: MSFNetConfig):
        super().__init__()
        if cfg.backbone.in_channels != 3:
            raise ValueError("MSFNet's backbone stem takes the RGB image (3 channels)")
        self.cfg = cfg
        stem = cfg.backbone.stem_width
        self.backbone = build_hrnet(cfg.backbone)  # its conv1 is the image branch of the late fusion
        self.guide_block = conv_bn_relu(cfg.guidance_channels, stem, stride=2)
        self.fuse = conv_bn_relu(2 * stem, stem, 1)
        self.maps_block = nn.Sequential(
            nn.Conv2d(cfg.map_channels, 16, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(16, stem, 3, stride=2, padding=1),
            ScaleLayer(0.05),
        )
        self.msf = MultiStageFusion(cfg.guidance_channels, cfg.msf_width, cfg.msf_blocks) if cfg.use_msf else None
        head_in = sum(cfg.backbone.widths) + (cfg.msf_width if cfg.use_msf else 0)
        self.head = SegmentationHead(head_in, cfg.head_widths)
        self.refiner = (ClickRefiner(cfg.head_widths[1], cfg.guidance_channels, cfg.refiner_width, cfg.refiner_dilations)
                        if cfg.refiner_width else None)

    def forward(self, image: torch.Tensor, guidance: torch.Tensor, click_maps: torch.Tensor) -> torch.Tensor:
        features, logits = self.base(image, guidance, click_maps)
        return self.refine(features, guidance, click_maps, logits)

    def base(self, image: torch.Tensor, guidance: torch.Tensor, click_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the head's stride-4 features, its logits): the network without its refiner."""
        x = self.fuse(torch.cat([self.backbone.stem1(image), self.guide_block(guidance)], dim=1))
        x = x + self.maps_block(click_maps)
        features = aggregate(self.backbone.forward_from_stem1(x))
        if self.msf is not None:
            features = torch.cat([features, self.msf(guidance)], dim=1)
        quarter = self.head.quarter(features)
        return quarter, self.head.logits(quarter)

    def refine(self, features: torch.Tensor, guidance: torch.Tensor, click_maps: torch.Tensor,
               logits: torch.Tensor) -> torch.Tensor:
        """The refiner's correction of the base logits (the logits themselves without a refiner)."""
        return logits if self.refiner is None else self.refiner(features, guidance, click_maps, logits)


def build_msfnet(cfg: MSFNetConfig) -> MSFNet:
    return MSFNet(cfg)
