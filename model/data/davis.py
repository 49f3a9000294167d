"""DAVIS (RITM layout): `img/<stem>.jpg`, `gt/<stem>.png`; any nonzero mask pixel is the object.

RITM `DavisDataset`: max over the mask's channels, > 0 -> object; no ignore label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from oace.errors import InputError
from model.data.base import SegDataset, Sample, index_by_stem, list_images, make_sample, read_label, read_rgb


class DavisDataset(SegDataset):
    name = "DAVIS"
    images_dir = "img"
    masks_dir = "gt"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        masks = index_by_stem(self.root / self.masks_dir)
        for img in list_images(self.root / self.images_dir):
            if img.stem not in masks:
                raise InputError(f"{img}: no mask with stem {img.stem!r} in {self.root / self.masks_dir}")
            self.items.append((img, masks[img.stem]))
        if not self.items:
            raise InputError(f"{self.root / self.images_dir}: no images found")

    def _files(self, item: tuple[Path, Path]) -> Sequence[Path]:
        return item

    def _load(self, item: tuple[Path, Path]) -> Sample:
        img_path, mask_path = item
        image = read_rgb(img_path)
        levels = read_label(mask_path, reduce="max")
        return make_sample(image, levels > 0, None, img_path.stem, img_path, mask_path)
