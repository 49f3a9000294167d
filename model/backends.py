"""Backends that run one prediction through the bundle contract (docs/bundle.md): torch and TFLite.

Every backend has `predict(image, clicks, prev_mask) -> prob`:
- image: uint8 [512, 512, 3] RGB 0..255 (already resized by the caller);
- clicks: sequence of `(x, y, label)` in 512-pixel coordinates, label 1 positive / 0 negative,
  the first one positive (row 0 of the contract); at most 24;
- prev_mask: float32 [512, 512] probabilities of the previous prediction (zeros on the first click);
- returns float32 [512, 512] object probabilities 0..1.
The resizing to 512 and back and the click mapping belong to the evaluation, not the backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from oace.errors import CheckpointError, InputError

INPUT_SIZE = 512
MAX_CLICKS = 24


class Backend(Protocol):
    name: str

    def predict(self, image: np.ndarray, clicks: Sequence[tuple[int, int, int]], prev_mask: np.ndarray) -> np.ndarray:
        ...


def encode_clicks(clicks: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Click rows `(x, y, label)` (label 1 / 0) -> int32 [1, 24, 3], padded with (0, 0, -1), validated."""
    from oace.model.segmenter import check_clicks, pack_clicks

    for i, (x, y, label) in enumerate(clicks):
        if label not in (0, 1):
            raise InputError(f"click {i} = ({x}, {y}, {label}): label must be 1 (positive) or 0 (negative)")
    packed = pack_clicks([(x, y, label == 1) for x, y, label in clicks], MAX_CLICKS)
    check_clicks(packed, INPUT_SIZE)
    return packed


def _check_inputs(image: np.ndarray, prev_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.shape != (INPUT_SIZE, INPUT_SIZE, 3):
        raise InputError(f"image must be uint8 [{INPUT_SIZE}, {INPUT_SIZE}, 3], got {image.dtype} {image.shape}")
    prev = np.asarray(prev_mask, dtype=np.float32).reshape(INPUT_SIZE, INPUT_SIZE)
    return image[None], prev[None, :, :, None]


def _check_output(out: np.ndarray, where: str) -> np.ndarray:
    out = np.asarray(out)
    if out.size != INPUT_SIZE * INPUT_SIZE:
        raise InputError(f"{where}: output has shape {out.shape}, expected [1, {INPUT_SIZE}, {INPUT_SIZE}, 1]")
    return out.reshape(INPUT_SIZE, INPUT_SIZE).astype(np.float32)


class TorchBackend:
    """A `torch.nn.Module` with the Segmenter contract: forward(image, clicks, prev_mask) -> mask."""

    def __init__(self, module: Any, name: str = "torch", num_threads: int | None = None) -> None:
        import torch

        self.module = module.eval()
        self.name = name
        self._torch = torch
        if num_threads:  # torch's thread count is process-wide: only set when asked (oace eval --threads)
            torch.set_num_threads(num_threads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, num_threads: int | None = None) -> "TorchBackend":
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: checkpoint not found")
        from oace.model.registry import load_model

        return cls(load_model(p), name=f"torch:{p.name}", num_threads=num_threads)

    def predict(self, image: np.ndarray, clicks: Sequence[tuple[int, int, int]], prev_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        img, prev = _check_inputs(image, prev_mask)
        with torch.inference_mode():
            try:
                out = self.module(torch.from_numpy(np.array(img, copy=True)), torch.from_numpy(encode_clicks(clicks)),
                                  torch.from_numpy(np.array(prev, copy=True)))
            except RuntimeError as exc:  # shape/dtype mismatches inside the network
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(f"{self.name}: inference failed ({first[:200]})") from None
        return _check_output(out.detach().cpu().numpy(), self.name)


class TFLiteBackend:
    """Any `.tflite` that follows the bundle contract, run with LiteRT (or tflite-runtime).

    Tensors are addressed by name through the signature runner: signature `segment` if present,
    else the only one; inputs `image`, `clicks`, `prev_mask`; the output `mask`, or a single output
    of 512*512 values under any name (onnx2tf may call it `output_0`).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: .tflite file not found")
        from oace.litert import SegmentRunner

        try:
            self.runner = SegmentRunner(self.path, num_threads=num_threads or os.cpu_count() or 1)
        except InputError as exc:  # a backend's model file problem is a checkpoint problem here
            raise CheckpointError(str(exc)) from None
        self.signature, self.output = self.runner.signature, self.runner.output_name
        self.name = f"tflite:{self.path.name}"

    def predict(self, image: np.ndarray, clicks: Sequence[tuple[int, int, int]], prev_mask: np.ndarray) -> np.ndarray:
        img, prev = _check_inputs(image, prev_mask)
        try:
            out = self.runner(img, encode_clicks(clicks), prev)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{self.path}: inference failed ({exc})") from None
        return _check_output(out, self.name)


def open_backend(path: str | os.PathLike, num_threads: int | None = None) -> Backend:
    """`.tflite` -> TFLiteBackend; anything else is a PyTorch checkpoint for `model.registry.load_model`
    (the word `reference`: the shipped reference checkpoint).

    num_threads: CPU threads for inference (None: torch's default, all cores for LiteRT). On a busy
    machine 1 thread can be many times faster than an oversubscribed 2."""
    from oace.model.reference import resolve_checkpoint

    p = Path(resolve_checkpoint(str(path)))
    if p.suffix.lower() == ".tflite":
        return TFLiteBackend(p, num_threads=num_threads)
    return TorchBackend.from_checkpoint(p, num_threads=num_threads)
