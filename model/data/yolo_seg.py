"""YOLO segmentation polygons (Ultralytics, as coco128-seg): `images/<split>/*.jpg`, `labels/<split>/*.txt`.

Each label line is `class x1 y1 x2 y2 ...` with coordinates normalized to 0..1; one sample per line,
whose `others` is the union of the image's other polygons.
Polygons are rasterized as COCO polygons (pycocotools), in pixel units x*W, y*H. Images without a label file hold no
object and are skipped; label files without an image are skipped too; both are counted in `notes`.
`split=None` pairs `images/` with `labels/` directly, or their single shared subfolder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from oace.errors import InputError
from oace.model.data.coco_json import decode_segmentation
from oace.model.data.base import SegDataset, Sample, list_images, make_sample, read_rgb


MAX_CLASS_ID = 1_000_000  # class ids are indices into a names list


def parse_label_line(line: str, where: str) -> tuple[int, np.ndarray]:
    """(class id, normalized (x, y) points [N, 2]); every number is checked: finite, in range, an
    integer class. `where` names the file and line in the one-line InputError."""
    parts = line.split()
    try:
        cls_value = float(parts[0])
        coords = np.array([float(v) for v in parts[1:]], dtype=np.float64)
    except (ValueError, IndexError):
        raise InputError(f"{where}: not a `class x1 y1 x2 y2 ...` line") from None
    if not (np.isfinite(cls_value) and cls_value == int(cls_value) and 0 <= cls_value <= MAX_CLASS_ID):
        raise InputError(f"{where}: class id must be an integer 0..{MAX_CLASS_ID}, got {parts[0]!r}")
    if coords.size < 6 or coords.size % 2:
        raise InputError(f"{where}: a polygon needs >= 3 (x, y) pairs, got {coords.size} numbers")
    if not np.isfinite(coords).all():
        bad = parts[1 + int(np.flatnonzero(~np.isfinite(coords))[0])]
        raise InputError(f"{where}: coordinate {bad!r} is not a finite number")
    if coords.min() < -0.01 or coords.max() > 1.01:
        raise InputError(f"{where}: coordinates must be normalized to 0..1")
    return int(cls_value), coords.reshape(-1, 2)


def rasterize_polygon(points: np.ndarray, height: int, width: int, where: str = "polygon") -> np.ndarray:
    """Normalized (x, y) polygon -> bool HxW, rasterized as COCO polygons are (pycocotools)."""
    flat = (points * np.array([width, height], dtype=np.float64)).reshape(-1).tolist()
    return decode_segmentation([flat], height, width, where)


class YoloSegDataset(SegDataset):
    name = "yolo_seg"

    def __init__(self, root: str | Path, split: str | None = None, *, name: str | None = None) -> None:
        super().__init__(root, name=name)
        img_root, lbl_root = self.root / "images", self.root / "labels"
        if split is None:
            subs = [p.name for p in img_root.iterdir() if p.is_dir()] if img_root.is_dir() else []
            split = subs[0] if len(subs) == 1 and (lbl_root / subs[0]).is_dir() else ""
        img_dir, lbl_dir = img_root / split, lbl_root / split
        if not lbl_dir.is_dir():
            raise InputError(f"{lbl_dir}: label folder not found (YOLO-seg layout: images/<split>, labels/<split>)")
        images = list_images(img_dir)
        stems = {p.stem for p in images}
        no_label = 0
        for img in images:
            lbl = lbl_dir / f"{img.stem}.txt"
            if not lbl.is_file():
                no_label += 1
                continue
            for n, line in enumerate(lbl.read_text().splitlines(), start=1):
                if line.strip():
                    parse_label_line(line, f"{lbl}:{n}")
                    self.items.append((img, lbl, n))
        orphans = sum(1 for p in lbl_dir.glob("*.txt") if p.stem not in stems)
        if no_label:
            self.notes.append(f"{no_label} images without a label file (no objects) skipped")
        if orphans:
            self.notes.append(f"{orphans} label files without an image skipped")
        if not self.items:
            raise InputError(f"{lbl_dir}: no polygons found")

    def _files(self, item: tuple[Path, Path, int]) -> Sequence[Path]:
        return item[:2]

    def _load(self, item: tuple[Path, Path, int]) -> Sample:
        img_path, lbl_path, line_no = item
        image = read_rgb(img_path)
        h, w = image.shape[:2]
        masks = {}
        for n, line in enumerate(lbl_path.read_text().splitlines(), start=1):
            if line.strip():
                _, pts = parse_label_line(line, f"{lbl_path}:{n}")
                masks[n] = rasterize_polygon(pts, h, w, f"{lbl_path}:{n}")
        others = np.zeros((h, w), dtype=bool)
        for n, m in masks.items():
            if n != line_no:
                others |= m
        return make_sample(image, masks[line_no], None, f"{img_path.stem}_{line_no}", img_path, f"{lbl_path}:{line_no}", others)
