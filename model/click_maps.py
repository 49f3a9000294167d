"""Click rows -> binary disk maps, exact under int8 export and cheap on a phone.

Two traps shape this module (both measured here, see docs/architecture.md):
- A float squared distance (0..520k at 512x512) compared against r^2 = 25 collapses once the graph
  is quantized to 8 bits (IoU 0.005, ../shared/design/TOOLCHAIN.md). So every coordinate,
  difference and squared distance is int32; only 0/1 indicator values become float.
- The obvious dense form, one squared distance per click per pixel ([B, 24, 512, 512] int32),
  costs ~70 ms per call in TFLite on this CPU, as much as the int8 networks themselves.

Instead, an integer disk of radius r is exactly the union of a few axis-aligned rectangles
(`disk_rectangles`: 4 for r = 5). The union over clicks and rectangles of outer products
"row inside" x "column inside" is one matrix product with an inner dimension of
rectangles x clicks (4 x 24 = 96): [H, 96] @ [96, W] counts how many (click, rectangle) pairs
cover each pixel, and a pixel is in some disk iff that count is > 0. The indicators come from
int32 comparisons on [B, N, 512] vectors; the product of 0/1 values is an exact small integer.
Fp32 TFLite runs this in ~2 ms. (int8 BATCH_MATMUL miscomputes these 0/1 operands, so the int8
bundle keeps this one product in float; see quantize/.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

POSITIVE, NEGATIVE, PADDING = 1, 0, -1


def disk_rectangles(radius: int) -> list[tuple[int, int]]:
    """(max |dy|, max |dx|) rectangles whose union is {dx^2 + dy^2 <= radius^2} over integer points."""
    widest_for_rows: dict[int, int] = {}
    for dy in range(radius + 1):
        half_width = math.isqrt(radius * radius - dy * dy)
        widest_for_rows[half_width] = dy  # rows |dy| <= dy all reach at least half_width
    return sorted((dy, dx) for dx, dy in widest_for_rows.items())


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
        rects = disk_rectangles(int(radius))
        self.radius = int(radius)
        self.register_buffer("grid_y", torch.arange(height, dtype=torch.int32).view(1, 1, 1, height), persistent=False)
        self.register_buffer("grid_x", torch.arange(width, dtype=torch.int32).view(1, 1, 1, width), persistent=False)
        self.register_buffer("rect_dy2", torch.tensor([a * a for a, _ in rects], dtype=torch.int32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("rect_dx2", torch.tensor([b * b for _, b in rects], dtype=torch.int32).view(1, -1, 1, 1), persistent=False)

    def forward(self, clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = clicks.shape
        k = self.rect_dy2.shape[1]
        cx = clicks[:, :, 0].view(b, 1, n, 1)
        cy = clicks[:, :, 1].view(b, 1, n, 1)
        dy = self.grid_y - cy  # [B, 1, N, H] int32
        dx = self.grid_x - cx  # [B, 1, N, W] int32
        rows = (dy * dy <= self.rect_dy2).to(torch.float32).reshape(b, 1, k * n, -1)  # [B, 1, K*N, H]
        cols = (dx * dx <= self.rect_dx2).to(torch.float32).reshape(b, 1, k * n, -1)  # [B, 1, K*N, W]

        labels = clicks[:, :, 2]
        positive = (labels == POSITIVE).to(torch.float32)
        negative = (labels == NEGATIVE).to(torch.float32)
        first = torch.cat([positive[:, :1], torch.zeros_like(positive[:, 1:])], dim=1)
        follow = torch.cat([torch.zeros_like(positive[:, :1]), positive[:, 1:]], dim=1)
        weights = torch.stack([first, follow, negative], dim=1).repeat(1, 1, k)  # [B, 3, K*N], k-major like rows

        counts = torch.matmul((rows * weights.unsqueeze(-1)).transpose(2, 3), cols)  # [B, 3, H, W]
        maps = (counts > 0.5).to(torch.float32)  # counts are whole numbers: covered iff >= 1
        return maps[:, :1], maps[:, 1:]
