"""DAVIS (RITM layout): `img/<stem>.jpg`, `gt/<stem>.png`; any nonzero mask pixel is the object.

RITM `DavisDataset`: max over the mask's channels, > 0 -> object; no ignore label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from model.data.base import SegDataset, Sample, make_sample, pair_by_stem, read_label, read_rgb


class DavisDataset(SegDataset):
    name = "DAVIS"
    images_dir = "img"
    masks_dir = "gt"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.items.extend(pair_by_stem(self.root / self.images_dir, self.root / self.masks_dir))

    def _files(self, item: tuple[Path, Path]) -> Sequence[Path]:
        return item

    def _load(self, item: tuple[Path, Path]) -> Sample:
        img_path, mask_path = item
        image = read_rgb(img_path)
        levels = read_label(mask_path, reduce="max")
        return make_sample(image, levels > 0, None, img_path.stem, img_path, mask_path)
