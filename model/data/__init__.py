"""Datasets for evaluation: one loader per layout, and `get_dataset(name, root)`.

Names (case-insensitive): GrabCut, Berkeley, DAVIS, SBD, COCO_MVal, COCO / LVIS (instance json),
yolo_seg (coco128-seg), salient (ECSSD, DUTS). `root` may be the dataset folder itself or its
parent (then `root/<name>` is used when it exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from oace.errors import InputError
from oace.model.data.base import Sample, SegDataset, read_label, read_rgb

__all__ = ["Sample", "SegDataset", "DATASETS", "get_dataset", "read_rgb", "read_label"]


def _grabcut(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.grabcut import GrabCutDataset
    return GrabCutDataset(root, **kw)


def _berkeley(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.berkeley import BerkeleyDataset
    return BerkeleyDataset(root, **kw)


def _davis(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.davis import DavisDataset
    return DavisDataset(root, **kw)


def _coco_mval(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.coco_mval import CocoMValDataset
    return CocoMValDataset(root, **kw)


def _sbd(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.sbd import SBDDataset
    return SBDDataset(root, **kw)


def _coco_json(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.coco_json import CocoJsonDataset
    return CocoJsonDataset(root, **kw)


def _yolo_seg(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.yolo_seg import YoloSegDataset
    return YoloSegDataset(root, **kw)


def _salient(root: Path, **kw: Any) -> SegDataset:
    from oace.model.data.salient import SalientDataset
    return SalientDataset(root, **kw)


# name -> (builder, folder names to look for under a parent root)
DATASETS: dict[str, tuple[Callable[..., SegDataset], tuple[str, ...]]] = {
    "grabcut": (_grabcut, ("GrabCut",)),
    "berkeley": (_berkeley, ("Berkeley",)),
    "davis": (_davis, ("DAVIS",)),
    "sbd": (_sbd, ("SBD",)),
    "coco_mval": (_coco_mval, ("COCO_MVal",)),
    "coco": (_coco_json, ("COCO", "coco")),
    "lvis": (_coco_json, ("LVIS", "lvis")),
    "yolo_seg": (_yolo_seg, ("coco128-seg",)),
    "coco128-seg": (_yolo_seg, ("coco128-seg",)),
    "salient": (_salient, ()),
    "ecssd": (_salient, ("ECSSD",)),
    "duts": (_salient, ("DUTS-TR-subset", "DUTS-TR", "DUTS")),
}


def get_dataset(name: str, root: str | Path, **kwargs: Any) -> SegDataset:
    """Build the loader registered as `name` over `root` (the dataset folder or its parent)."""
    key = name.lower().replace("-", "_") if name.lower() != "coco128-seg" else "coco128-seg"
    if key not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    builder, folders = DATASETS[key]
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base}: data root not found")
    for folder in (name, *folders):
        if (base / folder).is_dir():
            base = base / folder
            break
    return builder(base, name=name, **kwargs)
