"""Salient-object folders (ECSSD, DUTS): an image folder and a mask folder paired by stem.

Folder names are found automatically (a subfolder whose name contains "mask" or "gt" holds the
masks, the other one the images) or given. Masks may be soft: object = level > 127 (the DUTS
convention), no ignore label. One sample per image (the whole salient region).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from oace.errors import InputError
from oace.model.data.base import SegDataset, Sample, make_sample, pair_by_stem, read_label, read_rgb


class SalientDataset(SegDataset):
    name = "salient"

    def __init__(self, root: str | Path, images_dir: str | None = None, masks_dir: str | None = None, *,
                 name: str | None = None) -> None:
        super().__init__(root, name=name)
        if images_dir is None or masks_dir is None:
            subs = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            masks = [s for s in subs if "mask" in s.lower() or s.lower() in ("gt", "ground_truth")]
            others = [s for s in subs if s not in masks]
            if len(masks) != 1 or len(others) != 1:
                raise InputError(
                    f"{self.root}: cannot tell the image and mask folders apart among {subs}; "
                    "pass images_dir and masks_dir"
                )
            images_dir = images_dir or others[0]
            masks_dir = masks_dir or masks[0]
        self.items.extend(pair_by_stem(self.root / images_dir, self.root / masks_dir))

    def _files(self, item: tuple[Path, Path]) -> Sequence[Path]:
        return item

    def _load(self, item: tuple[Path, Path]) -> Sample:
        img_path, mask_path = item
        image = read_rgb(img_path)
        levels = read_label(mask_path, reduce="max")
        return make_sample(image, levels > 127, None, img_path.stem, img_path, mask_path)
