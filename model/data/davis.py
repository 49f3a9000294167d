"""DAVIS (RITM layout): `img/<stem>.jpg`, `gt/<stem>.png`; any nonzero mask pixel is the object.

RITM `DavisDataset`: max over the mask's channels, > 0 -> object; no ignore label.
"""

from __future__ import annotations

from pathlib import Path
from oace.model.data.base import Sample, make_sample, read_label, read_rgb
from oace.model.data.grabcut import PairedFolderDataset


class DavisDataset(PairedFolderDataset):
    """`img/` + `gt/` paired by stem; any nonzero mask value is the object, no ignore label."""

    name = "DAVIS"
    images_dir = "img"
    masks_dir = "gt"

    def _load(self, item: tuple[Path, Path]) -> Sample:
        img_path, mask_path = item
        image = read_rgb(img_path)
        levels = read_label(mask_path, reduce="max")
        return make_sample(image, levels > 0, None, img_path.stem, img_path, mask_path)
