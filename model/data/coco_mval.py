"""COCO_MVal (RITM layout): `img/<name>.jpg`, `gt/<name>.png` (0/255); read as DAVIS, as RITM does.

Some names contain spaces ("baseball bat00_000000057232.jpg"); pairing is by full stem.
"""

from __future__ import annotations

from oace.model.data.davis import DavisDataset


class CocoMValDataset(DavisDataset):
    name = "COCO_MVal"
