"""The HRNet family (Sun et al., 2019) as used by the OACE prior and MSFNet.

Two configs are registered: `hrnet_w18_small_v2` (the prior's backbone, ~3.86M params) and
`hrnet_w18` (MSFNet's backbone, ~9.56M params). Only the stem and the four stages are built: no
classification head and no OCR head. The network returns the four branch feature maps at
strides 4, 8, 16 and 32; `aggregate` makes the HRNetV2 representation (all branches upsampled
to stride 4 and concatenated).

Export notes: every upsampling uses a constant scale factor (a power of two), so the ONNX graph
has static Resize sizes; onnx2tf mis-tracks layouts when a Resize size is computed at run time
(see ../shared/design/TOOLCHAIN.md). Inputs must therefore have sides divisible by 32.

Names of submodules follow the official implementation (conv1/bn1/conv2/bn2/layer1/transition1/
stage2/...), so ImageNet checkpoints map onto them with few renames.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1


@dataclasses.dataclass(frozen=True)
class HRNetConfig:
    """Widths and depths of an HRNet.

    in_channels: channels of the input image (3 for RGB; 4 for RGB + click disk).
    stem_width: channels of the two stride-2 stem convolutions.
    stage1_blocks: bottleneck blocks of stage 1 (one branch, stage1_width -> 4 * stage1_width channels).
    stage1_width: bottleneck width of stage 1 (64 in every published HRNet).
    widths: channels of the four branches (stride 4, 8, 16, 32).
    stage_modules: number of multi-resolution modules in stages 2, 3, 4.
    blocks_per_branch: basic blocks per branch in every module of stages 2-4.
    """

    in_channels: int = 3
    stem_width: int = 64
    stage1_blocks: int = 4
    stage1_width: int = 64
    widths: tuple[int, int, int, int] = (18, 36, 72, 144)
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    blocks_per_branch: int = 4


HRNET_W18_SMALL_V2 = HRNetConfig(stage1_blocks=2, stage_modules=(1, 3, 2), blocks_per_branch=2)
HRNET_W18 = HRNetConfig(stage1_blocks=4, stage_modules=(1, 4, 3), blocks_per_branch=4)
HRNET_CONFIGS: dict[str, HRNetConfig] = {
    "hrnet_w18_small_v2": HRNET_W18_SMALL_V2,
    "hrnet_w18": HRNET_W18,
}


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear upsampling by a constant integer factor (static shapes in ONNX)."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def make_layer(block: type[BasicBlock] | type[Bottleneck], cin: int, planes: int, blocks: int) -> nn.Sequential:
    downsample = None
    if cin != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(cin, planes * block.expansion, 1, bias=False),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(cin, planes, downsample=downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks followed by an all-to-all multi-resolution fusion."""

    def __init__(self, widths: tuple[int, ...], blocks: int):
        super().__init__()
        self.num_branches = len(widths)
        self.branches = nn.ModuleList(make_layer(BasicBlock, w, w, blocks) for w in widths)
        self.fuse_layers = nn.ModuleList()
        for i in range(self.num_branches):
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:  # lower resolution -> 1x1 conv, then upsample in forward
                    row.append(nn.Sequential(
                        nn.Conv2d(widths[j], widths[i], 1, bias=False),
                        nn.BatchNorm2d(widths[i], momentum=BN_MOMENTUM),
                    ))
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution -> (i - j) stride-2 3x3 convs
                    steps = [conv_bn_relu(widths[j], widths[j], stride=2) for _ in range(i - j - 1)]
                    steps.append(conv_bn_relu(widths[j], widths[i], stride=2, relu=False))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, fuse in enumerate(row):
                if j == i:
                    continue
                z = fuse(xs[j])
                y = y + (upsample(z, 2 ** (j - i)) if j > i else z)
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet backbone: stem (two stride-2 convs) and four stages; returns 4 branch features.

    forward(x): x float [B, in_channels, H, W] (H, W divisible by 32) ->
        [B, w0, H/4, W/4], [B, w1, H/8, W/8], [B, w2, H/16, W/16], [B, w3, H/32, W/32].
    `forward_from_stem1(x)` starts after the first stem conv (x: [B, stem_width, H/2, W/2]), for
    networks that fuse extra inputs there (MSFNet's late fusion).
    """

    def __init__(self, cfg: HRNetConfig):
        super().__init__()
        self.cfg = cfg
        s = cfg.stem_width
        self.conv1 = nn.Conv2d(cfg.in_channels, s, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(s, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(s, s, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(s, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, s, cfg.stage1_width, cfg.stage1_blocks)
        widths = cfg.widths
        prev = [cfg.stage1_width * Bottleneck.expansion]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for n_branches, n_modules in zip((2, 3, 4), cfg.stage_modules):
            cur = list(widths[:n_branches])
            self.transitions.append(_transition(prev, cur))
            self.stages.append(nn.Sequential(
                *(HighResolutionModule(tuple(cur), cfg.blocks_per_branch) for _ in range(n_modules))
            ))
            prev = cur

    @property
    def out_channels(self) -> tuple[int, int, int, int]:
        return self.cfg.widths

    def stem1(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_from_stem1(self.stem1(x))

    def forward_from_stem1(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for transition, stage in zip(self.transitions, self.stages):
            new = []
            for k, t in enumerate(transition):
                src = xs[min(k, len(xs) - 1)]  # a new branch comes from the lowest existing one
                new.append(src if t is None else t(src))
            xs = stage(new)
        return xs


class _Transition(nn.ModuleList):
    """Per target branch: None (pass through), a conv to a new width, or a stride-2 conv for a new branch."""

    def __iter__(self):  # ModuleList cannot hold None; identity markers stand in for it
        for m in super().__iter__():
            yield None if isinstance(m, nn.Identity) else m


def _transition(prev: list[int], cur: list[int]) -> _Transition:
    layers = []
    for k, width in enumerate(cur):
        if k < len(prev):
            layers.append(nn.Identity() if prev[k] == width else conv_bn_relu(prev[k], width))
        else:
            layers.append(conv_bn_relu(prev[-1], width, stride=2))
    return _Transition(layers)


def aggregate(features: list[torch.Tensor]) -> torch.Tensor:
    """HRNetV2 representation: every branch upsampled to the first's stride and concatenated."""
    return torch.cat([upsample(f, 2 ** k) for k, f in enumerate(features)], dim=1)


def build_hrnet(cfg: HRNetConfig) -> HRNet:
    return HRNet(cfg)
