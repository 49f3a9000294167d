"""Backends that run one prediction through the bundle contract (docs/bundle.md): torch and TFLite.

Every backend has a `contract` (`BundleContract`: the input side S, the click rows N, the mask
threshold) and `predict(image, clicks, prev_mask) -> prob`:
- image: uint8 [S, S, 3] RGB 0..255 (already resized by the caller);
- clicks: sequence of `(x, y, label)` in S-pixel coordinates, label 1 positive / 0 negative,
  the first one positive (row 0 of the contract); at most N;
- prev_mask: float32 [S, S] probabilities of the previous prediction (zeros on the first click);
- returns float32 [S, S] object probabilities 0..1.
A PyTorch segmenter's contract is its `SegmenterConfig`'s; a bundle's comes from the file: S and N
from its input tensors, the threshold from the metadata JSON the exporter writes beside it
(`<bundle>.json`, `outputs.mask.threshold`; SegmenterConfig's default when there is none).
The resizing to S and back and the click mapping belong to `model.predictor.Predictor`, not the backend.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from oace.errors import CheckpointError, InputError


@dataclasses.dataclass(frozen=True)
class BundleContract:
    """What a model takes and how its output is read (docs/bundle.md)."""

    input_size: int  # S: image uint8 [1, S, S, 3]; prev_mask and the output float32 [1, S, S, 1]
    max_clicks: int  # N: click rows int32 [1, N, 3]
    threshold: float  # the object is where the output probability > threshold

    @classmethod
    def of_config(cls, cfg: Any = None) -> "BundleContract":
        """A PyTorch segmenter's contract: its SegmenterConfig's, or the defaults of one (cfg None)."""
        from oace.model.segmenter import SegmenterConfig

        cfg = cfg if cfg is not None else SegmenterConfig()
        return cls(cfg.input_size, cfg.max_clicks, cfg.mask_threshold)

    @classmethod
    def of_bundle(cls, path: str | os.PathLike, input_size: int, max_clicks: int) -> "BundleContract":
        """A bundle's contract: S and N read off its tensors by the caller, the threshold off its metadata JSON."""
        return cls(input_size, max_clicks, bundle_threshold(path))


def metadata_path(bundle: str | os.PathLike) -> Path:
    """The metadata JSON the exporter writes beside a bundle: `oace_segmenter_int8.tflite` -> `oace_segmenter_int8.json`."""
    return Path(bundle).with_suffix(".json")


def bundle_threshold(bundle: str | os.PathLike) -> float:
    """`outputs.mask.threshold` of the bundle's metadata JSON; SegmenterConfig's default when the JSON
    or the key is absent. A JSON that does not parse, or a threshold outside (0, 1), is a CheckpointError."""
    meta = metadata_path(bundle)
    default = BundleContract.of_config().threshold
    if not meta.is_file():
        return default
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta}: the metadata beside {Path(bundle).name} is not readable JSON ({exc})") from None
    mask = (data.get("outputs") or {}).get("mask") if isinstance(data, dict) else None
    threshold = mask.get("threshold") if isinstance(mask, dict) else None
    if threshold is None:
        return default
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise CheckpointError(f"{meta}: outputs.mask.threshold is {threshold!r}; expected a number in (0, 1)")
    return float(threshold)


class Backend(Protocol):
    name: str
    contract: BundleContract

    def predict(self, image: np.ndarray, clicks: Sequence[tuple[int, int, int]], prev_mask: np.ndarray) -> np.ndarray:
        ...


def encode_clicks(clicks: Sequence[tuple[int, int, int]], contract: BundleContract) -> np.ndarray:
    """Click rows `(x, y, label)` (label 1 / 0) -> int32 [1, N, 3], padded with (0, 0, -1), validated."""
    from oace.model.segmenter import check_clicks, pack_clicks

    for i, (x, y, label) in enumerate(clicks):
        if label not in (0, 1):
            raise InputError(f"click {i} = ({x}, {y}, {label}): label must be 1 (positive) or 0 (negative)")
    packed = pack_clicks([(x, y, label == 1) for x, y, label in clicks], contract.max_clicks)
    check_clicks(packed, contract.input_size)
    return packed


def _check_inputs(image: np.ndarray, prev_mask: np.ndarray, contract: BundleContract) -> tuple[np.ndarray, np.ndarray]:
    s = contract.input_size
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.shape != (s, s, 3):
        raise InputError(f"image must be uint8 [{s}, {s}, 3], got {image.dtype} {image.shape}")
    prev = np.asarray(prev_mask, dtype=np.float32)
    if prev.size != s * s:
        raise InputError(f"prev_mask must hold {s}x{s} probabilities, got shape {prev.shape}")
    return image[None], prev.reshape(1, s, s, 1)


def _check_output(out: np.ndarray, where: str, contract: BundleContract) -> np.ndarray:
    s = contract.input_size
    out = np.asarray(out)
    if out.size != s * s:
        raise InputError(f"{where}: output has shape {out.shape}, expected [1, {s}, {s}, 1]")
    return out.reshape(s, s).astype(np.float32)


class TorchBackend:
    """A `torch.nn.Module` with the Segmenter contract: forward(image, clicks, prev_mask) -> mask."""

    def __init__(self, module: Any, name: str = "torch", num_threads: int | None = None) -> None:
        import torch

        self.module = module.eval()
        self.name = name
        self._torch = torch
        self.contract = BundleContract.of_config(_segmenter_config(module))
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
        img, prev = _check_inputs(image, prev_mask, self.contract)
        with torch.inference_mode():
            try:
                out = self.module(torch.from_numpy(np.array(img, copy=True)),
                                  torch.from_numpy(encode_clicks(clicks, self.contract)),
                                  torch.from_numpy(np.array(prev, copy=True)))
            except RuntimeError as exc:  # shape/dtype mismatches inside the network
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(f"{self.name}: inference failed ({first[:200]})") from None
        return _check_output(out.detach().cpu().numpy(), self.name, self.contract)


def _segmenter_config(module: Any) -> Any:
    """The module's SegmenterConfig; None for any other module (a test's toy: the default contract)."""
    from oace.model.segmenter import SegmenterConfig

    cfg = getattr(module, "cfg", None)
    return cfg if isinstance(cfg, SegmenterConfig) else None


class TFLiteBackend:
    """Any `.tflite` that follows the bundle contract, run with LiteRT (or tflite-runtime).

    Tensors are addressed by name through `oace.litert.SegmentRunner` (signature `segment`, else the
    only one; inputs `image`, `clicks`, `prev_mask`; output `mask`, else the single output). The
    contract's S and N are the runner's tensor shapes, its threshold the metadata JSON's.
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
        self.contract = BundleContract.of_bundle(self.path, self.runner.input_size, self.runner.max_clicks)

    def predict(self, image: np.ndarray, clicks: Sequence[tuple[int, int, int]], prev_mask: np.ndarray) -> np.ndarray:
        img, prev = _check_inputs(image, prev_mask, self.contract)
        try:
            out = self.runner(img, encode_clicks(clicks, self.contract), prev)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{self.path}: inference failed ({exc})") from None
        return _check_output(out, self.name, self.contract)


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
