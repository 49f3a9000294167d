"""Issue 15, class 2: every annotation number the loaders read is checked (finite, in range, the right
type) and a bad one is refused in one line naming the file and the annotation, before pycocotools sees
it (a NaN polygon grew memory without bound; coordinates of 1e12 segfaulted it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.model.data.coco_json import CocoJsonDataset, check_segmentation, read_instances
from oace.model.data.yolo_seg import YoloSegDataset, parse_label_line
from oace.errors import InputError
from tests.cli_contract import assert_refused, run_oace

GOOD_LINE = "0 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9"


def yolo_set(root: Path, lines: list[str], n_images: int = 2, seed: int = 0) -> Path:
    """images/train/*.jpg + labels/train/*.txt; the last image's label file holds `lines`."""
    rng = np.random.default_rng(seed)
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(n_images):
        pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / "train" / f"{i:03d}.jpg")
        text = lines if i == n_images - 1 else [GOOD_LINE]
        (root / "labels" / "train" / f"{i:03d}.txt").write_text("\n".join(text) + "\n")
    return root


def coco_set(root: Path, mutate=None, seed: int = 0) -> tuple[Path, Path]:
    """annotations/instances_val.json + images/val/*.jpg with two polygon objects; `mutate(data)` edits the json."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "val").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / "images" / "val" / "a.jpg")
    square = [5.0, 5.0, 30.0, 5.0, 30.0, 30.0, 5.0, 30.0]
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 625.0, "segmentation": [square]},
            {"id": 11, "image_id": 1, "category_id": 2, "iscrowd": 0, "area": 100.0,
             "segmentation": [[35.0, 10.0, 45.0, 10.0, 45.0, 20.0, 35.0, 20.0]]},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    if mutate:
        mutate(data)
    path = root / "annotations" / "instances_val.json"
    path.write_text(json.dumps(data))  # json.dumps writes NaN / Infinity as Python's json reads them back
    return root, path


# --- validators -----------------------------------------------------------------------------------
@pytest.mark.parametrize("line, message", [
    ("0 0.1 nan 0.9 0.1 0.9 0.9", "'nan' is not a finite number"),
    ("0 0.1 0.1 inf 0.1 0.9 0.9", "'inf' is not a finite number"),
    ("0 0.1 0.1 1e12 0.1 0.9 0.9", "normalized to 0..1"),
    ("inf 0.1 0.1 0.9 0.1 0.9 0.9", "class id must be an integer"),
    ("nan 0.1 0.1 0.9 0.1 0.9 0.9", "class id must be an integer"),
    ("-1 0.1 0.1 0.9 0.1 0.9 0.9", "class id must be an integer"),
    ("1.5 0.1 0.1 0.9 0.1 0.9 0.9", "class id must be an integer"),
    ("0 0.1 0.1 0.9 0.1 0.9 0.9", None),
])
def test_yolo_label_numbers_are_checked(line, message):
    if message is None:
        cls, pts = parse_label_line(line, "f.txt:1")
        assert cls == 0 and pts.shape == (3, 2)
        return
    with pytest.raises(InputError, match="f.txt:3") as exc:
        parse_label_line(line, "f.txt:3")
    assert message in str(exc.value)


@pytest.mark.parametrize("segm, message", [
    ([[1.0, 2.0, float("nan"), 4.0, 5.0, 6.0]], "finite coordinates"),
    ([[1.0, 2.0, 1e12, 4.0, 5.0, 6.0]], "finite coordinates"),
    ([[1.0, 2.0, 500.0, 4.0, 5.0, 6.0]], "far outside the 50x40 image"),
    ([[1.0, 2.0, "3", 4.0, 5.0, 6.0]], "list of numbers"),
    ([[1.0, 2.0, True, 4.0, 5.0, 6.0]], "list of numbers"),
    ({"size": [40, 50], "counts": [100, 5]}, "sum to 105, not height*width = 2000"),
    ({"size": [40, 50], "counts": [2000, -1, 1]}, "RLE count must be an integer >= 0"),
    ({"size": [4000, 5000], "counts": [1]}, "differs from the image's 40x50"),
    ({"size": [40, 50], "counts": "PP"}, "corrupt compressed RLE"),
    ({"size": [40, 50], "counts": "0"}, "sum to 0"),
    ("polygon", "polygon list or an RLE dict"),
])
def test_coco_segmentations_are_checked_before_pycocotools(segm, message):
    with pytest.raises(InputError, match="ann 7") as exc:
        check_segmentation(segm, 40, 50, "ann 7")
    assert message in str(exc.value)


def test_a_valid_compressed_rle_passes():
    from pycocotools import mask as mu

    m = np.zeros((40, 50), dtype=np.uint8, order="F")
    m[5:20, 10:30] = 1
    rle = mu.encode(m)
    check_segmentation({"size": rle["size"], "counts": rle["counts"].decode()}, 40, 50, "ann")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["annotations"][1].pop("image_id"), "annotation 11: has no image_id"),
    (lambda d: d["annotations"][0].pop("id"), "annotation #0: has no id"),
    (lambda d: d["annotations"][1].update(area="big"), "annotation 11: area must be a finite number, got 'big'"),
    (lambda d: d["annotations"][1].update(area=float("nan")), "annotation 11: area must be a finite number"),
    (lambda d: d["annotations"][1].update(area=-3), "annotation 11: area must be >= 0"),
    (lambda d: d["annotations"][1].update(image_id="1"), "annotation 11: image_id must be a finite number"),
    (lambda d: d["annotations"][1].update(id=True), "annotation True: id must be a finite number"),
    (lambda d: d["annotations"][1].update(iscrowd=7), "annotation 11: iscrowd must be 0 or 1"),
    (lambda d: d["annotations"][1].update(image_id=99), "annotation 11: names unknown image 99"),
    (lambda d: d["annotations"][1].update(category_id=1.5), "annotation 11: category_id must be an integer"),
    (lambda d: d["images"][0].update(width=float("inf")), "image 1: width must be a finite number"),
    (lambda d: d["images"][0].pop("id"), "image 0: has no id"),
    (lambda d: d["images"][0].update(file_name=3), "needs a string file_name"),
    (lambda d: d["annotations"][0]["segmentation"][0].__setitem__(2, float("nan")), "annotation 10: polygon 0"),
    (lambda d: d["annotations"][0]["segmentation"][0].__setitem__(2, 1e12), "annotation 10: polygon 0"),
    (lambda d: d.update(annotations={"id": 1}), "needs lists 'images' and 'annotations'"),
])
def test_coco_fields_are_checked_naming_file_and_annotation(tmp_path, mutate, message):
    _, path = coco_set(tmp_path / "coco", mutate)
    with pytest.raises(InputError) as exc:
        read_instances(path)
    assert str(path) in str(exc.value) and message in str(exc.value), str(exc.value)


def test_a_clean_coco_set_and_yolo_set_load(tmp_path):
    root, _ = coco_set(tmp_path / "coco")
    ds = CocoJsonDataset(root)
    assert len(ds) == 2 and ds[0].mask.sum() == 625
    yolo = YoloSegDataset(yolo_set(tmp_path / "yolo", [GOOD_LINE, GOOD_LINE]))
    assert len(yolo) == 3 and yolo[0].mask.any()


def test_calibration_refuses_a_nan_polygon(tmp_path):
    from oace.calibration_data.sources import open_source

    root = yolo_set(tmp_path / "calib", [GOOD_LINE, "0 0.2 0.2 nan 0.2 0.8 0.8"])
    with pytest.raises(InputError, match=r"001.txt:2: coordinate 'nan' is not a finite number"):
        open_source(root)


def test_calibration_refuses_a_malformed_category(tmp_path):
    from oace.calibration_data.sources import open_source

    root, path = coco_set(tmp_path / "coco", lambda d: d["categories"].append({"id": "x", "name": 3}))
    source = open_source(root, kind="coco")
    with pytest.raises(InputError, match="category 2: needs an integer id"):
        source.instances()


# --- from outside: eval and train -----------------------------------------------------------------
EVAL = ["--checkpoint", "reference", "--limit", "1", "--max-clicks", "1", "--robustness-trials", "0",
        "--containment-trials", "0", "--no-progress"]


@pytest.mark.parametrize("bad", ["0 0.2 0.2 nan 0.2 0.8 0.8", "0 0.2 0.2 1e12 0.2 0.8 0.8"])
def test_eval_refuses_a_yolo_polygon_with_a_bad_number(tmp_path, bad):
    root = yolo_set(tmp_path / "yolo", [GOOD_LINE, bad])
    r = run_oace(["eval", "--dataset", "yolo_seg", "--data-root", root, "--out", tmp_path / "eval", *EVAL])
    assert_refused(r, str(root / "labels" / "train" / "001.txt") + ":2", max_rss_mb=3000, max_seconds=120)


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["annotations"][1].pop("image_id"), "annotation 11"),
    (lambda d: d["annotations"][0].update(area="625"), "annotation 10"),
    (lambda d: d["annotations"][0]["segmentation"][0].__setitem__(4, 1e12), "annotation 10"),
    (lambda d: d["annotations"][0]["segmentation"][0].__setitem__(4, float("nan")), "annotation 10"),
])
def test_eval_refuses_a_bad_coco_annotation(tmp_path, mutate, where):
    root, path = coco_set(tmp_path / "coco", mutate)
    r = run_oace(["eval", "--dataset", "COCO", "--data-root", root, "--out", tmp_path / "eval", *EVAL])
    assert_refused(r, str(path), where, max_rss_mb=3000, max_seconds=120)


def test_train_refuses_a_nan_polygon(tmp_path):
    root = yolo_set(tmp_path / "yolo", [GOOD_LINE, "0 0.2 0.2 0.8 nan 0.8 0.8"])
    out = tmp_path / "run"
    r = run_oace(["train", "msfnet", "--preset", "segmenter_tiny", "--data", f"yolo_seg:{root}", "--out", out,
                  "--epochs", "1", "--batch", "2", "--size", "64", "--no-progress"], timeout=300)
    assert_refused(r, str(root / "labels" / "train" / "001.txt") + ":2", max_rss_mb=3000, max_seconds=240)
