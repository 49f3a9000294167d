"""The `Sample` record, image/mask decoding and the base class every dataset loader extends.

A sample is one object to segment: `image` uint8 HxWx3 RGB 0..255, `mask` bool HxW (the object),
`ignore` bool HxW (pixels no metric or click may use; disjoint from `mask`), `name` (unique in its
dataset), and where the dataset knows them `others`: bool HxW, the union of the image's other
labelled objects (background for this sample; training draws hard negatives from it). Every decoding problem is an `InputError` naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from oace.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One object of one image; see the module docstring for dtypes and shapes."""

    image: np.ndarray
    mask: np.ndarray
    ignore: np.ndarray
    name: str
    others: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.mask.shape[0]), int(self.mask.shape[1])


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: unreadable or truncated image ({exc})") from None
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # a corrupt EXIF block: Pillow raises assorted types
        raise InputError(f"{path}: corrupt EXIF orientation ({exc})") from None


def _wide_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16/32-bit integer or float pixels -> uint8 0..255 (16-bit: value / 257, rounded)."""
    if arr.dtype.kind == "f":
        hi = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.rint(np.nan_to_num(arr) * (255.0 / hi)), 0, 255).astype(np.uint8)
    if arr.size and int(arr.max()) > 255:
        return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode any image file to uint8 HxWx3 RGB, EXIF orientation applied.

    Grayscale is replicated to three channels, alpha is dropped (as OpenCV's imread does),
    palette images are expanded to their colours, 16-bit images are scaled to 0..255.
    """
    p = Path(path)
    img = _open(p)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = _wide_to_uint8(np.asarray(img))
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    else:
        if img.mode == "P":
            img = img.convert("RGBA")
        if img.mode == "LA":
            img = img.convert("L")
        arr = np.asarray(img.convert("RGB"))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{p}: decoded to shape {arr.shape}, expected HxWx3")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def read_label(path: str | Path, reduce: str = "max") -> np.ndarray:
    """Decode a mask file to an int32 HxW array of 8-bit levels (EXIF orientation applied).

    Multi-channel masks are reduced with `reduce`: "max" over channels (RITM's DAVIS loader: any
    nonzero channel counts) or "blue" (RITM's GrabCut/Berkeley loaders read OpenCV channel 0, the
    blue one; for gray-in-RGB masks every channel is the same). Palette masks are expanded to their
    colours as OpenCV does; 16-bit masks above 255 are scaled to 8 bits (65535 -> 255).
    """
    p = Path(path)
    img = _open(p)
    if img.mode == "P":
        img = img.convert("RGB")
    elif img.mode in ("LA", "PA"):
        img = img.convert("L")
    elif img.mode in ("RGBA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX"):
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3:
        arr = arr.max(axis=2) if reduce == "max" else arr[:, :, 2]
    if arr.dtype != np.uint8:
        arr = _wide_to_uint8(arr)
    return arr.astype(np.int32)


def make_sample(image: np.ndarray, mask: np.ndarray, ignore: np.ndarray | None, name: str,
                image_path: Path | str, mask_path: Path | str, others: np.ndarray | None = None) -> Sample:
    """Validate and build a Sample: same size as the image, object not empty, ignore disjoint."""
    mask = np.asarray(mask, dtype=bool)
    ignore = np.zeros_like(mask) if ignore is None else np.asarray(ignore, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise InputError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    mask = mask & ~ignore
    if not mask.any():
        raise InputError(f"{mask_path}: empty mask (no object pixel) for sample {name!r}")
    if others is not None:
        others = np.asarray(others, dtype=bool) & ~mask & ~ignore
    return Sample(image=image, mask=mask, ignore=ignore, name=name, others=others)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; a clear error if the folder is missing."""
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found (expected an image folder of this dataset layout)")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def index_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found (expected a mask folder of this dataset layout)")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + (".mat",):
            out.setdefault(p.stem, p)
    return out


def pair_by_stem(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by file stem; an image without a mask or no image at all is an error."""
    masks = index_by_stem(masks_dir)
    pairs = []
    for img in list_images(images_dir):
        if img.stem not in masks:
            raise InputError(f"{img}: no mask with stem {img.stem!r} in {masks_dir}")
        pairs.append((img, masks[img.stem]))
    if not pairs:
        raise InputError(f"{images_dir}: no images found")
    return pairs


class SegDataset:
    """A lazily decoded list of samples. Subclasses fill `self.items` and implement `_load`/`_files`."""

    name: str = "dataset"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")
        self.items: list[Any] = []
        self.notes: list[str] = []  # things a report should say (skipped files, ...)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        return self._load(self.items[index])

    def __iter__(self) -> Iterator[Sample]:
        for item in self.items:
            yield self._load(item)

    def _load(self, item: Any) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def _files(self, item: Any) -> Sequence[Path]:  # pragma: no cover - abstract
        raise NotImplementedError

    def files(self, limit: int | None = None) -> list[Path]:
        """Every file the (first `limit`) samples are decoded from, deduplicated and sorted."""
        return sorted({Path(f) for item in self.items[:limit] for f in self._files(item)})

    def content_hash(self, limit: int | None = None) -> str:
        """sha256 over (relative path, file sha256) of the source files of the (first `limit`)
        samples, and over the sample list itself."""
        h = hashlib.sha256()
        for f in self.files(limit):
            try:
                rel = f.relative_to(self.root).as_posix()
            except ValueError:
                rel = f.as_posix()
            h.update(rel.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
        h.update(repr(self.items[:limit]).replace(str(self.root), "").encode())
        return h.hexdigest()
