"""GrabCut (RITM layout): `data_GT/<stem>.{jpg,JPG,bmp}` images, `boundary_GT/<stem>.bmp` masks.

Mask levels: 0 background, 255 object, 128 the uncertain band along the boundary, which is ignored
(RITM `GrabCutDataset`: channel 0, 128 -> ignore, >128 -> object). One sample per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from oace.model.data.base import SegDataset, Sample, make_sample, pair_by_stem, read_label, read_rgb


class PairedFolderDataset(SegDataset):
    """Images and masks paired by file stem; mask levels: 128 ignore, >128 object."""

    name = "GrabCut"
    images_dir = "data_GT"
    masks_dir = "boundary_GT"

    def __init__(self, root: str | Path, *, name: str | None = None) -> None:
        super().__init__(root, name=name)
        self.items.extend(pair_by_stem(self.root / self.images_dir, self.root / self.masks_dir))

    def _files(self, item: tuple[Path, Path]) -> Sequence[Path]:
        return item

    def _load(self, item: tuple[Path, Path]) -> Sample:
        img_path, mask_path = item
        image = read_rgb(img_path)
        levels = read_label(mask_path, reduce="blue")
        return make_sample(image, levels > 128, levels == 128, img_path.stem, img_path, mask_path)


class GrabCutDataset(PairedFolderDataset):
    pass
