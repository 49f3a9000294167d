"""SBD (RITM evaluation layout): `img/<name>.jpg`, `inst/<name>.mat`, `<split>.txt` listing names.

One sample per instance id (nonzero label of `GTinst.Segmentation`), as RITM `SBDEvaluationDataset`.
Without `<split>.txt`, every `.mat` in `inst/` is used. No ignore label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from oace.errors import InputError
from oace.model.data.base import SegDataset, Sample, make_sample, read_rgb


def read_sbd_instances(path: Path) -> np.ndarray:
    """`GTinst.Segmentation` of an SBD `.mat` file as an int32 HxW label map."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
        seg = mat["GTinst"]["Segmentation"][0][0]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (KeyError, ValueError, IndexError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not an SBD instance file with GTinst.Segmentation ({exc})") from None
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise InputError(f"{path}: GTinst.Segmentation has shape {seg.shape}, expected HxW")
    return seg.astype(np.int32)


class SBDDataset(SegDataset):
    name = "SBD"

    def __init__(self, root: str | Path, split: str = "val", *, name: str | None = None) -> None:
        super().__init__(root, name=name)
        inst_dir = self.root / "inst"
        split_file = self.root / f"{split}.txt"
        if split_file.is_file():
            names = [ln.strip() for ln in split_file.read_text().splitlines() if ln.strip()]
        elif inst_dir.is_dir():
            names = sorted(p.stem for p in inst_dir.glob("*.mat"))
            self.notes.append(f"no {split_file.name}: used every .mat in {inst_dir}")
        else:
            raise InputError(f"{inst_dir}: folder not found (SBD layout: img/*.jpg, inst/*.mat)")
        for name in names:
            labels = read_sbd_instances(inst_dir / f"{name}.mat")
            ids = [int(i) for i in np.unique(labels) if i != 0]
            self.items.extend((name, i) for i in ids)
        if not self.items:
            raise InputError(f"{self.root}: no SBD instances found")

    def _files(self, item: tuple[str, int]) -> Sequence[Path]:
        return (self.root / "img" / f"{item[0]}.jpg", self.root / "inst" / f"{item[0]}.mat")

    def _load(self, item: tuple[str, int]) -> Sample:
        name, inst = item
        img_path, mat_path = self._files(item)
        image = read_rgb(img_path)
        labels = read_sbd_instances(mat_path)
        return make_sample(image, labels == inst, None, f"{name}_{inst}", img_path, mat_path)
