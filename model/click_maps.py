"""Click rows -> binary disk maps, exact under int8 export and cheap on a phone.

Two traps shape this module (both measured here, see docs/architecture.md):
- A float squared distance (0..520k at 512x512) compared against r^2 = 25 collapses once the graph
  is quantized to 8 bits (IoU 0.005, ../shared/design/TOOLCHAIN.md). So every coordinate,
  difference and squared distance is int32; only 0/1 indicator values become float.
- The obvious dense form, one squared distance per click per pixel ([B, 24, 512, 512] int32),
  costs ~70 ms per call in TFLite on this CPU, as much as the int8 networks themselves.

Instead, an integer disk of radius r is exactly the union of a few axis-aligned rectangles
(`disk_rectangles`: 4 for r = 5). The union over clicks and rectangles of outer products
"row inside" x "column inside" is a matrix product with an inner dimension of
rectangles x clicks (4 x 24 = 96): [H, 96] @ [96, W x C] counts how many (click, rectangle) pairs
cover each pixel of each of C maps, and a pixel is in some disk iff that count is >= 1. The indicators come from
int32 comparisons on [B, N, 512] vectors; the product of 0/1 values is an exact small integer.
Fp32 TFLite runs this in well under 1 ms at 2 threads. (int8 BATCH_MATMUL miscomputes these 0/1
operands, so the int8 bundle keeps the products and their clamp in float; see quantize/.)
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
        first, others = self.encode_nhwc(clicks)
        return first.permute(0, 3, 1, 2), others.permute(0, 3, 1, 2)

    def encode_nhwc(self, clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """clicks int32 [B, N, 3] -> (first_disk [B, H, W, 1], click_maps [B, H, W, 2]), float 0/1.

        Channels-last on purpose, as the exported graph runs: a [B, 3, H, W] product made the
        converter add full-resolution transposes, and slicing channels out of one NHWC product
        costs a strided copy, so each output is its own product. The union is clamped to 1 (counts
        are whole numbers >= 0, so this is exact) rather than compared: a float MINIMUM runs in
        XNNPACK, while a GREATER + CAST pair fell back to TFLite's reference kernels (~5 ms at 512x512).
        """
        b, n, _ = clicks.shape
        k = self.rect_dy2.shape[1]
        h, w = self.grid_y.shape[-1], self.grid_x.shape[-1]
        cx = clicks[:, :, 0].view(b, 1, n, 1)
        cy = clicks[:, :, 1].view(b, 1, n, 1)
        dy = self.grid_y - cy  # [B, 1, N, H] int32
        dx = self.grid_x - cx  # [B, 1, N, W] int32
        rows = (dy * dy <= self.rect_dy2).to(torch.float32).reshape(b, k * n, h).transpose(1, 2)  # [B, H, K*N]
        cols = (dx * dx <= self.rect_dx2).to(torch.float32).reshape(b, k * n, w)  # [B, K*N, W]

        labels = clicks[:, :, 2]
        positive = (labels == POSITIVE).to(torch.float32)
        negative = (labels == NEGATIVE).to(torch.float32)
        first = torch.cat([positive[:, :1], torch.zeros_like(positive[:, 1:])], dim=1)
        follow = torch.cat([torch.zeros_like(positive[:, :1]), positive[:, 1:]], dim=1)

        def union(weights: torch.Tensor) -> torch.Tensor:
            """weights [B, N, C] -> [B, H, W, C]: pixel (y, x) of channel c counts the covering (click, rectangle) pairs."""
            c = weights.shape[-1]
            per_channel = (cols.unsqueeze(-1) * weights.repeat(1, k, 1).unsqueeze(2)).reshape(b, k * n, w * c)  # k-major like rows
            counts = torch.matmul(rows, per_channel).reshape(b, h, w, c)
            return torch.clamp(counts, max=1.0)  # covered iff count >= 1

        return union(first.unsqueeze(-1)), union(torch.stack([follow, negative], dim=-1))
