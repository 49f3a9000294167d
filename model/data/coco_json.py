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
from model.data.base import SegDataset, Sample, make_sample, read_rgb


def _pycocotools_mask() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise InputError("COCO/LVIS json needs pycocotools: pip install pycocotools==2.0.11") from None
    return mask_utils


def decode_segmentation(segm: Any, height: int, width: int, where: str) -> np.ndarray:
    """A COCO `segmentation` (polygon list, RLE or uncompressed RLE) -> bool HxW."""
    mu = _pycocotools_mask()
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


class CocoJsonDataset(SegDataset):
    name = "COCO"

    def __init__(self, root: str | Path, ann_file: str | Path | None = None,
                 image_dir: str | Path | None = None, min_area: float = 1.0) -> None:
        super().__init__(root)
        self.ann_path = self._find_ann(ann_file)
        self.image_dir = self._find_images(image_dir)
        try:
            data = json.loads(self.ann_path.read_text(encoding="utf-8"))
            images = {int(im["id"]): im for im in data["images"]}
            anns = list(data["annotations"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.ann_path}: not a COCO/LVIS instance json ({exc})") from None
        self._images = images
        self._crowd: dict[int, list[dict[str, Any]]] = {}
        skipped = 0
        for ann in sorted(anns, key=lambda a: (int(a["image_id"]), int(a.get("id", 0)))):
            if int(ann["image_id"]) not in images:
                raise InputError(f"{self.ann_path}: annotation {ann.get('id')} names unknown image {ann['image_id']}")
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
        image = read_rgb(img_path)
        h, w = image.shape[:2]
        if (int(info.get("height", h)), int(info.get("width", w))) != (h, w):
            raise InputError(
                f"{img_path}: image is {w}x{h} but {self.ann_path.name} says {info.get('width')}x{info.get('height')}"
            )
        where = f"{self.ann_path} annotation {ann.get('id')}"
        mask = decode_segmentation(ann["segmentation"], h, w, where)
        ignore = np.zeros_like(mask)
        for crowd in self._crowd.get(int(ann["image_id"]), []):
            ignore |= decode_segmentation(crowd["segmentation"], h, w, f"{self.ann_path} annotation {crowd.get('id')}")
        name = f"{Path(_image_file(info)).stem}_{ann.get('id', len(self.items))}"
        return make_sample(image, mask, ignore & ~mask, name, img_path, where)
