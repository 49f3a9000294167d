"""COCO / LVIS instance json: one sample per annotation (polygons or RLE, decoded with pycocotools).

`root/<ann_file>` (default: the only `*.json` in `root/annotations/` or `root/`) and an image folder
(default: the first of `images/<split>`, `<split>`, `images`, `img` that exists, where `<split>` is the
json's stem without its `instances_` prefix). COCO images name their file in `file_name`; LVIS ones in
`coco_url`. Crowd annotations are not samples: they become the ignore region of the other objects
of their image. Annotations with `area < min_area` are skipped (counted in `notes`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oace.errors import InputError
from oace.model.data.base import SegDataset, Sample, image_size, make_sample, read_rgb, resize_mask


def _pycocotools_mask() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise InputError("COCO/LVIS json needs pycocotools: pip install pycocotools==2.0.11") from None
    return mask_utils


MAX_COORDINATE = 1e6  # |polygon coordinate| in pixels; pycocotools overflows (and segfaults) far beyond
MAX_ID = 2**63 - 1


def _number(value: Any, where: str, key: str) -> float:
    """A finite JSON number (bool and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, key: str, low: int = 0) -> int:
    """A JSON integer in low..MAX_ID (an integral float such as 3.0 counts)."""
    v = _number(value, where, key)
    if v != int(v) or not low <= v <= MAX_ID:
        raise InputError(f"{where}: {key} must be an integer >= {low}, got {value!r}")
    return int(v)


def _check_polygons(segm: list, height: int | None, width: int | None, where: str) -> None:
    """Every polygon a list of finite numbers within the image (one image size of slack each way)."""
    for k, poly in enumerate(segm):
        if not isinstance(poly, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in poly):
            raise InputError(f"{where}: polygon {k} must be a list of numbers")
        a = np.asarray(poly, dtype=np.float64)
        if a.size % 2 or not np.isfinite(a).all() or (a.size and np.abs(a).max() > MAX_COORDINATE):
            raise InputError(f"{where}: polygon {k} needs an even count of finite coordinates within "
                             f"+-{MAX_COORDINATE:.0e} px")
        for axis, dim in ((0, width), (1, height)):
            vals = a[axis::2]
            if dim and vals.size and (vals.min() < -dim or vals.max() > 2 * dim):
                raise InputError(f"{where}: polygon {k} has coordinates far outside the {width}x{height} image")


def _rle_string_total(counts: str, where: str) -> tuple[int, bool]:
    """(sum of run lengths, all non-negative) of a compressed RLE string, as pycocotools' rleFrString reads it."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts) or k > 12:
                raise InputError(f"{where}: corrupt compressed RLE counts")
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        runs.append(x + runs[-2] if len(runs) > 2 else x)
    return sum(runs), all(r >= 0 for r in runs)


def _check_rle(segm: dict, height: int | None, width: int | None, where: str) -> None:
    """size [h, w] matching the image; counts non-negative and summing to h*w (else pycocotools writes
    out of bounds)."""
    size = segm.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        raise InputError(f"{where}: RLE size must be [height, width], got {size!r}")
    h, w = (_integer(v, where, "RLE size", low=1) for v in size)
    if (height and height != h) or (width and width != w):
        raise InputError(f"{where}: RLE size {h}x{w} (HxW) differs from the image's {height}x{width}")
    counts = segm.get("counts")
    if isinstance(counts, list):
        total, ok = sum(_integer(c, where, "RLE count") for c in counts), True
    elif isinstance(counts, str) and counts.isascii():
        total, ok = _rle_string_total(counts, where)
    else:
        raise InputError(f"{where}: RLE counts must be a list of integers or an ASCII string")
    if not ok or total != h * w:
        raise InputError(f"{where}: RLE counts sum to {total}, not height*width = {h * w}")


def check_segmentation(segm: Any, height: int | None, width: int | None, where: str) -> None:
    """Refuse, naming `where`, any segmentation pycocotools could crash or run away on."""
    if isinstance(segm, list):
        _check_polygons(segm, height, width, where)
    elif isinstance(segm, dict):
        _check_rle(segm, height, width, where)
    else:
        raise InputError(f"{where}: segmentation must be a polygon list or an RLE dict, got {type(segm).__name__}")


def decode_segmentation(segm: Any, height: int, width: int, where: str) -> np.ndarray:
    """A COCO `segmentation` (polygon list, RLE or uncompressed RLE) -> bool HxW, checked first."""
    mu = _pycocotools_mask()
    check_segmentation(segm, height, width, where)
    try:
        if isinstance(segm, list):
            polys = [p for p in segm if len(p) >= 6]
            if not polys:
                return np.zeros((height, width), dtype=bool)
            rle = mu.merge(mu.frPyObjects(polys, height, width))
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
            rle = mu.frPyObjects(segm, height, width)
        elif isinstance(segm, dict):
            rle = dict(segm)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode("ascii")
        else:
            raise TypeError(type(segm).__name__)
        m = mu.decode(rle)
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{where}: undecodable segmentation ({exc})") from None
    if m.ndim == 3:
        m = m.max(axis=2)
    return m.astype(bool)


def _image_file(img: dict[str, Any]) -> str:
    if "file_name" in img:
        return str(img["file_name"])
    if "coco_url" in img:  # LVIS
        return str(img["coco_url"]).rsplit("/", 1)[-1]
    raise KeyError("file_name")


def _check_image(im: Any, path: Path, k: int) -> dict[str, Any]:
    """An `images` entry: integer id, a file name, positive integer width/height where given."""
    where = f"{path} image {k}"
    if not isinstance(im, dict):
        raise InputError(f"{where}: must be an object, got {type(im).__name__}")
    if "id" not in im:
        raise InputError(f"{where}: has no id")
    im = {**im, "id": _integer(im["id"], where, "id")}
    if not isinstance(im.get("file_name", im.get("coco_url")), str):
        raise InputError(f"{path} image {im['id']}: needs a string file_name (or coco_url)")
    for key in ("width", "height"):
        if key in im:
            im[key] = _integer(im[key], f"{path} image {im['id']}", key, low=1)
    return im


def _check_annotation(ann: Any, path: Path, k: int, images: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """An `annotations` entry: integer id and image_id (of a listed image), 0/1 iscrowd, finite
    non-negative area, integer category_id, a segmentation pycocotools can decode safely."""
    where = f"{path} annotation {ann.get('id', f'#{k}') if isinstance(ann, dict) else f'#{k}'}"
    if not isinstance(ann, dict):
        raise InputError(f"{where}: must be an object, got {type(ann).__name__}")
    for key in ("id", "image_id", "segmentation"):
        if key not in ann:
            raise InputError(f"{where}: has no {key}")
    ann = {**ann, "id": _integer(ann["id"], where, "id"), "image_id": _integer(ann["image_id"], where, "image_id")}
    if ann["image_id"] not in images:
        raise InputError(f"{where}: names unknown image {ann['image_id']}")
    if _integer(ann.get("iscrowd", 0), where, "iscrowd") > 1:
        raise InputError(f"{where}: iscrowd must be 0 or 1, got {ann['iscrowd']!r}")
    if "area" in ann and _number(ann["area"], where, "area") < 0:
        raise InputError(f"{where}: area must be >= 0, got {ann['area']!r}")
    if "category_id" in ann:
        _integer(ann["category_id"], where, "category_id")
    info = images[ann["image_id"]]
    check_segmentation(ann["segmentation"], info.get("height"), info.get("width"), where)
    return ann


def read_instances(path: Path) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """({image id: image}, annotations) of an instance json, every field the loaders read checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not a COCO/LVIS instance json ({str(exc)[:200]})") from None
    lists = isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations"))
    if not lists:
        raise InputError(f"{path}: not a COCO/LVIS instance json (needs lists 'images' and 'annotations')")
    images: dict[int, dict[str, Any]] = {}
    for k, im in enumerate(data["images"]):
        im = _check_image(im, path, k)
        images[im["id"]] = im
    anns = [_check_annotation(ann, path, k, images) for k, ann in enumerate(data["annotations"])]
    return images, anns


class CocoJsonDataset(SegDataset):
    name = "COCO"

    def __init__(self, root: str | Path, ann_file: str | Path | None = None,
                 image_dir: str | Path | None = None, min_area: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(root, name=name)
        self.ann_path = self._find_ann(ann_file)
        self.image_dir = self._find_images(image_dir)
        images, anns = read_instances(self.ann_path)
        self._images = images
        self._crowd: dict[int, list[dict[str, Any]]] = {}
        skipped = 0
        for ann in sorted(anns, key=lambda a: (a["image_id"], a["id"])):
            if ann.get("iscrowd", 0):
                self._crowd.setdefault(int(ann["image_id"]), []).append(ann)
            elif float(ann.get("area", 1.0)) < min_area:
                skipped += 1
            else:
                self.items.append(ann)
        if skipped:
            self.notes.append(f"skipped {skipped} annotations with area < {min_area}")
        if not self.items:
            raise InputError(f"{self.ann_path}: no (non-crowd) annotations")

    def _find_ann(self, ann_file: str | Path | None) -> Path:
        if ann_file is not None:
            p = Path(ann_file)
            p = p if p.is_absolute() or p.exists() else self.root / p
            if not p.is_file():
                raise InputError(f"{p}: annotation json not found")
            return p
        for folder in (self.root / "annotations", self.root):
            found = sorted(folder.glob("*.json")) if folder.is_dir() else []
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InputError(f"{folder}: {len(found)} json files, pass ann_file to choose one")
        raise InputError(f"{self.root}: no annotation json in annotations/ or the root")

    def _find_images(self, image_dir: str | Path | None) -> Path:
        if image_dir is not None:
            p = Path(image_dir)
            p = p if p.is_absolute() or p.exists() else self.root / p
            if not p.is_dir():
                raise InputError(f"{p}: image folder not found")
            return p
        split = self.ann_path.stem.replace("instances_", "").replace("lvis_v1_", "")
        for cand in (self.root / "images" / split, self.root / split, self.root / "images", self.root / "img"):
            if cand.is_dir():
                return cand
        raise InputError(f"{self.root}: no image folder (tried images/{split}, {split}, images, img)")

    def _files(self, ann: dict[str, Any]) -> Sequence[Path]:
        return (self.image_dir / _image_file(self._images[int(ann["image_id"])]), self.ann_path)

    def _load(self, ann: dict[str, Any]) -> Sample:
        info = self._images[int(ann["image_id"])]
        img_path = self.image_dir / _image_file(info)
        w, h = image_size(img_path)  # full resolution: the annotation's coordinates
        if (int(info.get("height", h)), int(info.get("width", w))) != (h, w):
            raise InputError(
                f"{img_path}: image is {w}x{h} but {self.ann_path.name} says {info.get('width')}x{info.get('height')}"
            )
        image = read_rgb(img_path)  # downscaled when over the image limits' max side
        size = (image.shape[1], image.shape[0])
        where = f"{self.ann_path} annotation {ann.get('id')}"
        mask = resize_mask(decode_segmentation(ann["segmentation"], h, w, where), size)
        ignore = np.zeros_like(mask)
        for crowd in self._crowd.get(int(ann["image_id"]), []):
            crowd_where = f"{self.ann_path} annotation {crowd.get('id')}"
            ignore |= resize_mask(decode_segmentation(crowd["segmentation"], h, w, crowd_where), size)
        name = f"{Path(_image_file(info)).stem}_{ann.get('id', len(self.items))}"
        return make_sample(image, mask, ignore & ~mask, name, img_path, where)
