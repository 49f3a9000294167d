"""Loaders on the real benchmark copies in ../shared/data (skipped cleanly when absent).

Indexing reads only file names; a few samples per set are decoded and checked against the raw files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.model.data import get_dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA, TRAIN = SHARED / "data", SHARED / "data-train"


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def by_name(ds, name: str):
    for i, item in enumerate(ds.items):
        if Path(item[0]).stem == name:
            return ds[i]
    raise AssertionError(f"{name} not in {ds.name}")


def test_grabcut_50_samples_with_ignore_band():
    ds = get_dataset("GrabCut", need(DATA))
    assert len(ds) == 50 and len(ds.files()) == 100
    s = by_name(ds, "stone1")
    raw = np.asarray(Image.open(DATA / "GrabCut" / "boundary_GT" / "stone1.bmp"))
    assert s.image.shape == (480, 640, 3)
    assert s.mask.sum() == (raw == 255).sum() and s.ignore.sum() == (raw == 128).sum() > 0
    assert {p.suffix for p in ds.files()} >= {".jpg", ".JPG", ".bmp"}


def test_berkeley_100_samples_and_odd_levels_are_object():
    ds = get_dataset("Berkeley", need(DATA))
    assert len(ds) == 100
    names = {Path(i[0]).stem for i in ds.items}
    assert {"189011a", "189011b", "239007a", "239007b"} <= names
    s = by_name(ds, "8023")
    raw = np.asarray(Image.open(DATA / "Berkeley" / "masks" / "8023.png"))[..., 2]
    assert s.image.shape == (321, 481, 3)
    assert s.mask.sum() == (raw > 128).sum() and (raw == 197).any() and s.mask[raw == 197].all()


def test_coco_mval_400_samples_names_with_spaces():
    ds = get_dataset("COCO_MVal", need(DATA))
    assert len(ds) == 400
    spaced = [i for i in ds.items if " " in i[0].name]
    assert len(spaced) == 75
    s = by_name(ds, "baseball bat00_000000057232")
    raw = np.asarray(Image.open(DATA / "COCO_MVal" / "gt" / "baseball bat00_000000057232.png"))
    assert s.mask.shape == raw.shape[:2] == s.image.shape[:2] and s.mask.sum() == (raw > 0).sum() > 0


def test_coco128_seg_929_polygons_on_126_images():
    pytest.importorskip("pycocotools")
    ds = get_dataset("coco128-seg", need(DATA))
    assert len(ds) == 929 and len({i[0] for i in ds.items}) == 126
    assert sorted(ds.notes) == ["2 images without a label file (no objects) skipped",
                                "2 label files without an image skipped"]
    for i in (0, 464, 928):
        s = ds[i]
        assert s.mask.any() and s.mask.shape == s.image.shape[:2]


def test_salient_training_sets():
    ecssd = get_dataset("ECSSD", need(TRAIN))
    duts = get_dataset("DUTS", TRAIN)
    assert len(ecssd) == 963 and len(duts) == 1508
    s = by_name(duts, "n01532829_13482")               # the one RGB mask
    assert s.mask.any() and s.mask.shape == s.image.shape[:2]
    assert ecssd[0].image.dtype == np.uint8
