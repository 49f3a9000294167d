"""The `Sample` record, image/mask decoding and the base class every dataset loader extends.

A sample is one object to segment: `image` uint8 HxWx3 RGB 0..255, `mask` bool HxW (the object),
`ignore` bool HxW (pixels no metric or click may use; disjoint from `mask`), `name` (unique in its
dataset), and where the dataset knows them `others`: bool HxW, the union of the image's other
labelled objects (background for this sample; training draws hard negatives from it). Every decoding problem is an `InputError` naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from oace.errors import InputError, ToolkitError

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


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """What one image may cost. Over max_pixels (read from the header, before any decoding) is
    refused; a longer side over max_side is downscaled on load (JPEGs decode reduced, via draft)."""

    max_pixels: int = 120_000_000  # 120 megapixels: a 10000 x 10000 photo loads, a 12000 x 12000 one does not
    max_side: int = 4096  # every dataset photo we evaluate on is far below; a 12 MP phone photo (4000 x 3000) too


IMAGE_LIMITS = ImageLimits()
_ORIENTATION = 0x0112  # EXIF tag; values 5..8 swap width and height


def bounded_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most max_side (unchanged when it already is)."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _header(path: Path, limits: ImageLimits) -> Image.Image:
    """The opened (not yet decoded) image; over the pixel limit is an InputError saying the limit."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: our limit below says more
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: image over the limit of {limits.max_pixels / 1e6:.0f} megapixels ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: unreadable or truncated image ({exc})") from None
    w, h = img.size
    if w * h > limits.max_pixels:
        img.close()
        raise InputError(f"{path}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
                         f"{limits.max_pixels / 1e6:.0f} megapixels")
    return img


def image_size(path: str | Path, limits: ImageLimits | None = None) -> tuple[int, int]:
    """(width, height) at full resolution with EXIF orientation applied, from the header only."""
    limits = limits or IMAGE_LIMITS
    with _header(Path(path), limits) as img:
        w, h = img.size
        try:
            turned = img.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
        except Exception:  # noqa: BLE001 - a corrupt EXIF block: read_rgb reports it
            turned = False
    return (h, w) if turned else (w, h)


def _open(path: Path, limits: ImageLimits = IMAGE_LIMITS) -> Image.Image:
    """Decoded image, EXIF orientation applied; a JPEG over max_side decodes reduced (draft)."""
    img = _header(path, limits)
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # Pillow's process-wide switch: we read it, never set it
        img.close()
        raise ToolkitError(f"{path}: not decoded: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process, so a "
                           "truncated file would load silently grey-filled; set it back to False")
    try:
        if img.format == "JPEG" and max(img.size) > limits.max_side:
            img.draft("RGB" if img.mode not in ("L", "CMYK") else img.mode, bounded_size(*img.size, limits.max_side))
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: unreadable or truncated image ({exc})") from None
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # a corrupt EXIF block: Pillow raises assorted types
        raise InputError(f"{path}: corrupt EXIF orientation ({exc})") from None


def _fit(arr: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """uint8 HxW or HxWx3 resized to size=(width, height), unless it already has it."""
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    return np.asarray(Image.fromarray(arr).resize(size, resample))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool HxW -> bool at size=(width, height), nearest neighbour (how labels follow a downscaled photo)."""
    return _fit(mask.astype(np.uint8) * 255, size, Image.NEAREST) > 127


def _wide_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16/32-bit integer or float pixels -> uint8 0..255 (16-bit: value / 257, rounded)."""
    if arr.dtype.kind == "f":
        hi = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.rint(np.nan_to_num(arr) * (255.0 / hi)), 0, 255).astype(np.uint8)
    if arr.size and int(arr.max()) > 255:
        return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def read_rgb(path: str | Path, limits: ImageLimits | None = None) -> np.ndarray:
    """Decode any image file to uint8 HxWx3 RGB, EXIF orientation applied, longer side at most
    limits.max_side (bilinear); over limits.max_pixels is refused before decoding.

    Grayscale is replicated to three channels, alpha is dropped (as OpenCV's imread does),
    palette images are expanded to their colours, 16-bit images are scaled to 0..255.
    """
    p, limits = Path(path), limits or IMAGE_LIMITS
    target = bounded_size(*image_size(p, limits), limits.max_side)
    img = _open(p, limits)
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
    return np.ascontiguousarray(_fit(np.asarray(arr, dtype=np.uint8), target, Image.BILINEAR))


def read_label(path: str | Path, reduce: str = "max", limits: ImageLimits | None = None) -> np.ndarray:
    """Decode a mask file to an int32 HxW array of 8-bit levels (EXIF orientation applied).

    Multi-channel masks are reduced with `reduce`: "max" over channels (RITM's DAVIS loader: any
    nonzero channel counts) or "blue" (RITM's GrabCut/Berkeley loaders read OpenCV channel 0, the
    blue one; for gray-in-RGB masks every channel is the same). Palette masks are expanded to their
    colours as OpenCV does; 16-bit masks above 255 are scaled to 8 bits (65535 -> 255).
    """
    p, limits = Path(path), limits or IMAGE_LIMITS
    target = bounded_size(*image_size(p, limits), limits.max_side)  # the size read_rgb gives its photo
    img = _open(p, limits)
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
    return _fit(np.ascontiguousarray(arr, dtype=np.uint8), target, Image.NEAREST).astype(np.int32)


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
    """A lazily decoded list of samples. Subclasses fill `self.items` and implement `_load`/`_files`.

    `name`: the one given (get_dataset passes the name it was asked for, e.g. "ECSSD"), else the
    layout's own (the class attribute, e.g. "salient")."""

    name: str = "dataset"

    def __init__(self, root: str | Path, *, name: str | None = None) -> None:
        self.name = name or type(self).name
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
