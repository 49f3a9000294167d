"""recipes/pack_device_data.py: training sets small enough to travel to a lent accelerator, still
readable by the same dataset readers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.model.data import get_dataset

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "pack_device_data.py"


def _packer():
    spec = importlib.util.spec_from_file_location("pack_device_data", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _salient(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "ground_truth_mask").mkdir()
    (root / "SOURCE.md").write_text("test set\n")
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(root / "images" / f"{i:04d}.jpg")
        mask = np.zeros((300, 400), np.uint8)
        mask[50 + i: 200, 100: 300 - i] = 255
        Image.fromarray(mask).save(root / "ground_truth_mask" / f"{i:04d}.png")
    return root


def test_a_pack_keeps_the_layout_fits_the_budget_and_reads_back(tmp_path):
    pack = _packer()
    src = _salient(tmp_path / "ECSSD", 12)
    whole = pack.pack([src], tmp_path / "out", 1000.0, max_side=200, quality=80)
    assert whole["every"] == 1 and whole["folders"][0]["stems"] == 12
    budget_mib = whole["bytes"] / 3 / 2**20  # a third of the packed set: every 3rd or 4th image
    rec = pack.pack([src], tmp_path / "out", budget_mib, max_side=200, quality=80)
    packed = tmp_path / "out" / "ECSSD"
    assert 3 <= rec["every"] <= 5 and rec["folders"][0]["stems"] == len(range(0, 12, rec["every"]))
    assert rec["bytes"] <= budget_mib * 2**20
    assert not (packed / "SOURCE.md").exists()  # top-level notes stay behind; data only
    ds = get_dataset("salient", packed)
    assert len(ds) == rec["folders"][0]["stems"]
    sample = ds[1]
    assert max(sample.image.shape[:2]) == 200  # 400 px long side resized to --max-side
    levels = np.unique(np.asarray(Image.open(packed / "ground_truth_mask" / f"{rec['every']:04d}.png")))
    assert set(levels.tolist()) == {0, 255}  # nearest-neighbour: a mask keeps its levels
    assert (tmp_path / "out" / "DATA").read_text().strip() == f"salient:{packed}"
    assert json.loads((tmp_path / "out" / "pack.json").read_text())["every"] == rec["every"]


def test_packed_real_training_sets_keep_their_instances(tmp_path, shared_dir):
    """The device recipe's data: every reader opens the packed copy, instance sets keep the other
    objects as background, and the pack stays inside its budget."""
    pack = _packer()
    folders = [shared_dir / "data-train" / "COCO-train-mini", shared_dir / "data-train" / "ECSSD"]
    rec = pack.pack(folders, tmp_path / "pack", 2.0)
    assert rec["bytes"] <= 2.0 * 2**20
    coco = get_dataset("yolo_seg", tmp_path / "pack" / "COCO-train-mini")
    original = get_dataset("yolo_seg", folders[0])
    assert 0 < len(coco) < len(original)
    sample = coco[0]
    assert sample.mask.any() and sample.others is not None and sample.others.any()
    assert max(sample.image.shape[:2]) <= 320
    assert len(get_dataset("salient", tmp_path / "pack" / "ECSSD")) == rec["folders"][1]["stems"]


def test_the_cli_names_a_missing_folder(tmp_path, capsys):
    assert _packer().main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_it_never_replaces_a_folder_that_is_not_a_pack(tmp_path, capsys):
    src = _salient(tmp_path / "ECSSD", 2)
    keep = tmp_path / "work"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert _packer().main([str(src), "--out", str(keep)]) == 2
    assert "not an earlier pack" in capsys.readouterr().err and (keep / "notes.txt").read_text() == "mine"
