"""Interactive use in Python: set an image once, then ask for a mask per click (segment-anything
style), on any backend: a PyTorch Segmenter or checkpoint (`reference` too) or a bundle `.tflite`.

The photo (any size) is resized, not cropped, to the model's square input (S, from its contract:
`model.backends.BundleContract`); clicks given in the photo's pixel coordinates are mapped onto that
grid (`to_network_xy`); the probability map comes back at the photo's size. `oace eval`
(`model.evaluate.Session`), the calibration builder and apps use the same resizing and click
mapping. `predict` takes the previous mask at the photo's size and resizes it to S; `predict_network`
takes and returns the raw S x S output, which `oace eval` and apps feed back as `prev_mask`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from PIL import Image

from oace.model.backends import Backend, BundleContract, TorchBackend, open_backend
from oace.model.clicks import Click as RobotClick
from oace.model.segmenter import Segmenter
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
    """set_image(rgb) once, then predict([(x, y, positive), ...], prev_mask) -> H x W probabilities.

    Predictor(segmenter) runs a PyTorch Segmenter; Predictor(backend) any `model.backends` backend;
    Predictor.open(path) a checkpoint, `reference` or a bundle .tflite. Input size, click rows and
    the mask threshold are the model's (`contract`). Clicks are (x, y, positive) tuples or
    `model.clicks.Click`s. One image at a time: a backend is not safe to share between threads.
    """

    def __init__(self, model: Segmenter | Backend) -> None:
        self.backend = _as_backend(model)
        self.contract: BundleContract = self.backend.contract
        self.size = self.contract.input_size
        self._image: np.ndarray | None = None
        self._hw: tuple[int, int] = (0, 0)

    @classmethod
    def open(cls, model: str | os.PathLike, num_threads: int | None = None) -> "Predictor":
        """A checkpoint (.pt), `reference` (the shipped checkpoint) or a bundle .tflite.
        num_threads: CPU threads for inference (None: torch's default, all cores for LiteRT)."""
        predictor = cls(open_backend(model, num_threads=num_threads))
        module = getattr(predictor.backend, "module", None)
        if module is not None and not isinstance(module, Segmenter):
            raise InputError(f"{model}: a {type(module).__name__} checkpoint; a Predictor needs a segmenter "
                             "(segmenter.pt from `oace train msfnet`, or `reference`)")
        return predictor

    @property
    def threshold(self) -> float:
        """The model's mask threshold: the object is where the probability > threshold."""
        return self.contract.threshold

    def set_image(self, image: np.ndarray) -> None:
        """image: uint8 [H, W, 3] RGB 0..255, any size."""
        check_image(image)
        self._hw = image.shape[:2]
        self._image = resize_image(image, self.size)

    @property
    def network_image(self) -> np.ndarray:
        """The photo as the network sees it: uint8 [1, S, S, 3] (the bundle's `image` input)."""
        if self._image is None:
            raise InputError("Predictor: call set_image(image) first")
        return self._image[None]

    def predict(self, clicks: Sequence[Click | RobotClick], prev_mask: np.ndarray | None = None) -> np.ndarray:
        """float32 [H, W] probabilities; prev_mask: the previous prediction at the photo's size (None: zeros)."""
        h, w = self._require_image()
        prev = None
        if prev_mask is not None:
            if prev_mask.shape != (h, w):
                raise InputError(f"prev_mask: expected shape [{h}, {w}] (the image's), got {list(prev_mask.shape)}")
            prev = resize_prob(prev_mask, self.size, self.size)
        return resize_prob(self.predict_network(clicks, prev), w, h)

    def predict_network(self, clicks: Sequence[Click | RobotClick], prev: np.ndarray | None = None) -> np.ndarray:
        """The model's raw float32 [S, S] output for clicks in the photo's pixels; prev: the previous raw
        output [S, S] (None: zeros on a first click)."""
        h, w = self._require_image()
        rows = []
        for click in clicks:
            x, y, positive = (click.x, click.y, click.is_positive) if isinstance(click, RobotClick) else click
            if not (0 <= x < w and 0 <= y < h):
                raise InputError(f"clicks: ({x}, {y}) is outside the {w}x{h} image")
            rows.append((*to_network_xy(x, y, w, h, self.size), 1 if positive else 0))
        if prev is None:
            prev = np.zeros((self.size, self.size), np.float32)
        return self.backend.predict(self._image, rows, prev)

    def mask(self, prob: np.ndarray) -> np.ndarray:
        """bool mask of probabilities at the model's threshold."""
        return np.asarray(prob) > self.threshold

    def _require_image(self) -> tuple[int, int]:
        if self._image is None:
            raise InputError("Predictor: call set_image(image) before predict()")
        return self._hw


def _as_backend(model: Any) -> Backend:
    """A Segmenter -> its TorchBackend; a backend as it is; anything else a one-line InputError."""
    import torch

    if isinstance(model, Segmenter):
        return TorchBackend(model)
    if isinstance(model, torch.nn.Module) or not (hasattr(model, "predict") and hasattr(model, "contract")):
        raise InputError(f"Predictor needs a Segmenter, got {type(model).__name__} (load a segmenter checkpoint)")
    return model
