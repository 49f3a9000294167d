"""Berkeley (RITM layout): `images/<stem>.jpg`, `masks/<stem>.png`; same rules as GrabCut.

RITM's `BerkeleyDataset` is its GrabCut loader with other folder names: channel 0 of the mask,
128 -> ignore, >128 -> object. One sample per mask stem.
"""

from __future__ import annotations

from oace.model.data.grabcut import PairedFolderDataset


class BerkeleyDataset(PairedFolderDataset):
    name = "Berkeley"
    images_dir = "images"
    masks_dir = "masks"
