"""Click rows -> binary disk maps, in integer arithmetic so the encoding survives int8 export.

A float squared distance (0..520k at 512x512) compared against r^2 = 25 collapses once the graph
is quantized to 8 bits (measured IoU 0.005, ../shared/design/TOOLCHAIN.md). Here coordinates,
grids, differences and squared distances are all int32; only the final 0/1 comparison result
becomes float.
"""

from __future__ import annotations

import torch
from torch import nn

POSITIVE, NEGATIVE, PADDING = 1, 0, -1


class ClickEncoder(nn.Module):
    """clicks int32 [B, N, 3] rows (x, y, label) -> (first_disk, click_maps).

    first_disk: float [B, 1, H, W], the disk of row 0 when it is a positive click (else zeros).
    click_maps: float [B, 2, H, W], the union of disks of the positive rows 1..N-1 (channel 0) and
                of the negative rows (channel 1). Padding rows (label -1) draw nothing.
    A disk is every pixel with (x - cx)^2 + (y - cy)^2 <= radius^2; a click outside the image
    draws only the part of its disk that falls inside (none when far outside).
    """

    def __init__(self, height: int, width: int, radius: int):
        super().__init__()
        self.radius_sq = int(radius) * int(radius)
        self.register_buffer("grid_x", torch.arange(width, dtype=torch.int32).view(1, 1, 1, width), persistent=False)
        self.register_buffer("grid_y", torch.arange(height, dtype=torch.int32).view(1, 1, height, 1), persistent=False)

    def disks(self, clicks: torch.Tensor) -> torch.Tensor:
        """int32 [B, N, 3] -> float [B, N, H, W] disks of every row, labels ignored."""
        cx = clicks[:, :, 0:1].unsqueeze(-1)  # [B, N, 1, 1]
        cy = clicks[:, :, 1:2].unsqueeze(-1)
        dx = self.grid_x - cx  # [B, N, 1, W] int32
        dy = self.grid_y - cy  # [B, N, H, 1] int32
        inside = dx * dx + dy * dy <= self.radius_sq  # [B, N, H, W], all-integer comparison
        return inside.to(torch.float32)

    def forward(self, clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        disks = self.disks(clicks)
        labels = clicks[:, :, 2]
        positive = (labels == POSITIVE).to(torch.float32).unsqueeze(-1).unsqueeze(-1)  # [B, N, 1, 1]
        negative = (labels == NEGATIVE).to(torch.float32).unsqueeze(-1).unsqueeze(-1)
        first = disks[:, :1] * positive[:, :1]
        follow_pos = torch.amax(disks[:, 1:] * positive[:, 1:], dim=1, keepdim=True)
        neg = torch.amax(disks * negative, dim=1, keepdim=True)
        return first, torch.cat([follow_pos, neg], dim=1)
