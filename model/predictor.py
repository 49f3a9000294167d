"""Interactive use in Python: set an image once, then ask for a mask per click (segment-anything style).

The photo (any size) is resized, not cropped, to the segmenter's square input; clicks given in the
photo's pixel coordinates are mapped onto that grid (`to_network_xy`); the probability map comes
back at the photo's size. `oace eval`, the calibration builder and apps use the same resizing and
click mapping. One difference: apps and `oace eval` feed the raw 512x512 output back as
`prev_mask`, while `predict` takes the previous mask at the photo's size and resizes it again.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from oace.model.segmenter import Segmenter, check_clicks, pack_clicks
from oace.errors import InputError

Click = tuple[float, float, bool]  # (x, y, is_positive) in the photo's pixel coordinates


def check_image(image: np.ndarray, what: str = "image") -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} array of shape {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"{what}: expected a uint8 RGB array of shape [H, W, 3], got {desc}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"{what}: empty image of shape {list(image.shape)}")


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 -> uint8 size x size x 3 (Pillow bilinear, antialiased when shrinking); a writable copy."""
    if image.shape[:2] == (size, size):
        return np.array(image, dtype=np.uint8)
    return np.array(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def resize_prob(prob: np.ndarray, width: int, height: int) -> np.ndarray:
    """float32 2-D map -> float32 height x width (Pillow bilinear on float, antialiased when shrinking)."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.shape == (height, width):
        return np.array(prob)
    return np.array(Image.fromarray(prob).resize((width, height), Image.BILINEAR))


def to_network_xy(x: float, y: float, width: int, height: int, size: int) -> tuple[int, int]:
    """A photo pixel (x = column, y = row) -> the pixel of the size x size network grid that covers its center."""
    return (min(size - 1, int((x + 0.5) * size / width)), min(size - 1, int((y + 0.5) * size / height)))


class Predictor:
    """Predictor(segmenter).set_image(rgb); predict([(x, y, positive), ...], prev_mask) -> HxW probabilities."""

    def __init__(self, segmenter: Segmenter):
        if not isinstance(segmenter, Segmenter):
            raise InputError(f"Predictor needs a Segmenter, got {type(segmenter).__name__} (load a segmenter checkpoint)")
        self.model = segmenter.eval()
        self.size = segmenter.cfg.input_size
        self._image: torch.Tensor | None = None
        self._hw: tuple[int, int] = (0, 0)

    def set_image(self, image: np.ndarray) -> None:
        check_image(image)
        self._hw = image.shape[:2]
        self._image = torch.from_numpy(resize_image(image, self.size)).unsqueeze(0)

    @property
    def network_image(self) -> np.ndarray:
        """The photo as the network sees it: uint8 [1, S, S, 3] (the bundle's `image` input)."""
        if self._image is None:
            raise InputError("Predictor: call set_image(image) first")
        return self._image.numpy()

    @torch.no_grad()
    def predict(self, clicks: Sequence[Click], prev_mask: np.ndarray | None = None) -> np.ndarray:
        if self._image is None:
            raise InputError("Predictor: call set_image(image) before predict()")
        h, w = self._hw
        for x, y, _ in clicks:
            if not (0 <= x < w and 0 <= y < h):
                raise InputError(f"clicks: ({x}, {y}) is outside the {w}x{h} image")
        net_clicks = [(*to_network_xy(x, y, w, h, self.size), positive) for x, y, positive in clicks]
        packed = pack_clicks(net_clicks, self.model.cfg.max_clicks)
        check_clicks(packed, self.size)
        if prev_mask is None:
            prev = np.zeros((self.size, self.size), np.float32)
        else:
            if prev_mask.shape != (h, w):
                raise InputError(f"prev_mask: expected shape [{h}, {w}] (the image's), got {list(prev_mask.shape)}")
            prev = resize_prob(prev_mask, self.size, self.size)
        prob = self.model(self._image, torch.from_numpy(packed), torch.from_numpy(prev)[None, :, :, None])
        return resize_prob(prob[0, :, :, 0].numpy(), w, h)
