"""Calibration sets from small synthetic folders (mask folder, COCO json), the embedded default, and errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.calibration_data import CalibrationManifest, build_calibration_set, open_calibration_set
from oace.calibration_data.sources import detect_kind
from oace.model.data import read_label
from oace.errors import InputError, ToolkitError

H, W = 96, 128


def ellipse_mask(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    cy, cx = rng.integers(30, h - 30), rng.integers(30, w - 30)
    ry, rx = rng.integers(14, 26), rng.integers(14, 26)
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_folder(root: Path, n: int, seed: int = 0) -> Path:
    """root/images/NNN.png (noise + a bright object) and root/masks/NNN.png (0/255)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        m = ellipse_mask(rng)
        img = rng.integers(0, 120, (H, W, 3), dtype=np.uint8)
        img[m] += 120
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(m.astype(np.uint8) * 255).save(root / "masks" / f"{i:03d}.png")
    return root


def photo_mask(root: Path, entry) -> np.ndarray:
    return read_label(root / entry.instance["mask_file"]) > 127


def test_small_folder_is_refused_without_force_and_used_with_it(tmp_path):
    root = make_folder(tmp_path / "objs", 14)
    assert detect_kind(root) == "folder"
    with pytest.raises(ToolkitError) as err:
        build_calibration_set(root, held_out=2)
    assert str(err.value) == (f"calibration needs >= 100 images, found 12 in {root} "
                              "(pass force=True / --force-calib to use them anyway)")
    calib = build_calibration_set(root, held_out=2, force=True)
    m = calib.manifest
    assert (m.source_kind, m.is_coco, m.forced, m.count, m.distinct_images, len(m.held_out)) == (
        "folder", False, True, 12, 12, 2)
    assert m.classes_covered == 0 and all(e.class_id is None for e in m.entries)
    assert len(m.files) == 14 * 2 and sum(e.prev_mask is not None for e in m.entries) == 6
    ok = build_calibration_set(root, held_out=2, min_count=12)
    assert not ok.manifest.forced and ok.manifest.entries == m.entries


def test_folder_clicks_in_photo_pixels_respect_the_mask_files(tmp_path):
    root = make_folder(tmp_path / "objs", 20, seed=3)
    calib = build_calibration_set(root, held_out=0, force=True, seed=5)
    assert calib.manifest.count == 20
    n_pos = n_neg = 0
    for e in calib.manifest.entries:
        mask = photo_mask(root, e)
        assert e.photo_size == (W, H)
        for k, (x, y, label) in enumerate(e.clicks):
            if label == 1:
                n_pos += 1
                assert mask[y, x]
                if k == 0:  # >= 5 px from the border (the ellipses have radius >= 14): no background closer
                    yy, xx = np.mgrid[:H, :W]
                    assert mask[(xx - x) ** 2 + (yy - y) ** 2 < 25].all(), (e.name, x, y)
            else:
                n_neg += 1
                assert not mask[y, x]
    assert n_pos >= 20 and n_neg >= 1


def test_manifest_round_trip_and_the_opened_set_streams_identical_samples(tmp_path):
    root = make_folder(tmp_path / "objs", 12)
    calib = build_calibration_set(root, held_out=0, force=True)
    path = calib.manifest.save(tmp_path / "out")
    loaded = CalibrationManifest.load(tmp_path / "out")
    assert path.name == "calibration_manifest.json" and loaded == calib.manifest
    again = open_calibration_set(path, root)
    assert len(again) == len(calib) == 12
    for a, b in zip(calib.iter_samples(), again.iter_samples(), strict=True):
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("image", "clicks", "prev_mask", "mask"))


def test_a_changed_or_missing_file_is_named(tmp_path):
    root = make_folder(tmp_path / "objs", 12)
    manifest = build_calibration_set(root, held_out=0, force=True).manifest
    img = np.asarray(Image.open(root / "images" / "004.png")).copy()
    img[0, 0] ^= 1
    Image.fromarray(img).save(root / "images" / "004.png")
    with pytest.raises(ToolkitError, match=r"images/004\.png: file differs from the calibration manifest") as err:
        open_calibration_set(manifest, root)
    assert "\n" not in str(err.value)
    (root / "images" / "004.png").unlink()
    (root / "masks" / "004.png").unlink()
    with pytest.raises(ToolkitError, match=r"instances of the calibration manifest are missing \(first: masks/004\.png\)"):
        open_calibration_set(manifest, root)


def test_unreadable_image_is_a_one_line_error_naming_it(tmp_path):
    root = make_folder(tmp_path / "objs", 12)
    (root / "images" / "007.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError) as err:
        build_calibration_set(root, held_out=0, force=True)
    assert str(root / "images" / "007.png") in str(err.value) and "\n" not in str(err.value)


def test_mask_of_another_size_is_a_one_line_error_naming_it(tmp_path):
    root = make_folder(tmp_path / "objs", 12)
    Image.fromarray(np.full((H // 2, W // 2), 255, np.uint8)).save(root / "masks" / "002.png")
    with pytest.raises(InputError, match=r"masks/002\.png: mask is 64x48 \(WxH\) but its image .* is 128x96"):
        build_calibration_set(root, held_out=0, force=True)


def test_missing_source_no_usable_object_and_bad_manifest_are_named(tmp_path):
    with pytest.raises(InputError, match="calibration source folder not found"):
        build_calibration_set(tmp_path / "nope")
    root = make_folder(tmp_path / "objs", 3)
    with pytest.raises(ToolkitError, match=rf"{root}: no usable object for calibration \(all under 50.0% of their photo\)"):
        build_calibration_set(root, held_out=0, force=True, min_area=0.5)
    bad = tmp_path / "calibration_manifest.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(InputError, match=rf"{bad}: not a calibration manifest"):
        CalibrationManifest.load(bad)


def _coco_root(root: Path, n_images: int = 6) -> Path:
    """val2017/ + annotations/instances_val2017.json: 2 objects per photo, a crowd ring around the first,
    and a tiny object that must be skipped."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(7)
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    yy, xx = np.mgrid[:H, :W]
    for i in range(1, n_images + 1):
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "val2017" / f"{i:012d}.png")
        images.append({"id": i, "file_name": f"{i:012d}.png", "width": W, "height": H})
        cx, cy = 40, 48
        poly = [cx - 16, cy - 16, cx + 16, cy - 16, cx + 16, cy + 16, cx - 16, cy + 16]
        anns.append({"id": 10 * i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 32 * 32.0,
                     "segmentation": [poly], "bbox": [cx - 16, cy - 16, 32, 32]})
        ring = (np.maximum(abs(xx - cx), abs(yy - cy)) > 19) & (np.maximum(abs(xx - cx), abs(yy - cy)) <= 40)
        rle = mask_utils.encode(np.asfortranarray(ring.astype(np.uint8)))
        anns.append({"id": 10 * i + 1, "image_id": i, "category_id": 1, "iscrowd": 1, "area": float(ring.sum()),
                     "segmentation": {"size": [H, W], "counts": rle["counts"].decode("ascii")}, "bbox": [0, 0, W, H]})
        anns.append({"id": 10 * i + 2, "image_id": i, "category_id": 3, "iscrowd": 0, "area": 400.0,
                     "segmentation": [[95, 20, 115, 20, 115, 40, 95, 40]], "bbox": [95, 20, 20, 20]})
        anns.append({"id": 10 * i + 3, "image_id": i, "category_id": 2, "iscrowd": 0, "area": 16.0,
                     "segmentation": [[100, 80, 104, 80, 104, 84, 100, 84]], "bbox": [100, 80, 4, 4]})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "speck"}, {"id": 3, "name": "tile"}]}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": images, "annotations": []}))
    return root


def test_coco_root_skips_crowd_and_tiny_and_never_clicks_on_crowd_pixels(tmp_path):
    root = _coco_root(tmp_path / "coco")
    assert detect_kind(root) == "coco"
    calib = build_calibration_set(root, count=12, held_out=0, force=True)
    m = calib.manifest
    assert m.source_kind == "coco" and m.is_coco and m.count == 12 and m.classes_covered == 2
    assert sorted({e.class_name for e in m.entries}) == ["box", "tile"]  # the 4x4 "speck" is < 0.5%
    assert {e.instance["annotation_id"] % 10 for e in m.entries} == {0, 2}  # never the crowd annotation
    assert [e.class_id for e in m.entries[:2]] in ([1, 3], [3, 1])
    yy, xx = np.mgrid[:H, :W]
    ring = (np.maximum(abs(xx - 40), abs(yy - 48)) > 19) & (np.maximum(abs(xx - 40), abs(yy - 48)) <= 40)
    negatives = 0
    for e in m.entries:
        for x, y, label in e.clicks:
            assert not ring[y, x], (e.name, x, y)
            negatives += label == 0
    assert negatives >= 1
    assert any("annotations/instances_val2017.json" == f for f, _ in m.files)


def test_embedded_default_works_offline_and_says_it_is_not_coco(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(ToolkitError, match=r"calibration needs >= 100 images, found 6 in embedded"):
        build_calibration_set("embedded")
    calib = build_calibration_set("embedded", count=24, held_out=4, force=True)
    m = calib.manifest
    assert (m.source_kind, m.is_coco, m.forced, m.count, len(m.held_out), m.distinct_images) == (
        "embedded", False, True, 24, 4, 6)
    assert m.warning == ("NOT COCO: embedded scikit-image sample photos; int8 ranges calibrated on 6 photos; "
                         "build from coco128-seg or a COCO root for a shippable bundle")
    assert m.classes_covered == 16 and len({e.key for e in m.entries + m.held_out}) == 28
    assert {e.image for e in m.entries} == {f"skimage.data.{p}" for p in
                                            ("astronaut", "camera", "chelsea", "coffee", "motorcycle", "rocket")}
    samples = list(calib.iter_samples())
    for s in samples:
        rows = s.clicks[s.clicks[:, 2] >= 0]
        assert all(s.mask[y, x] == (label == 1) for x, y, label in rows)
    first = samples[0]
    assert {k: (getattr(first, k).dtype.name, getattr(first, k).shape) for k in ("image", "clicks", "prev_mask")} == {
        "image": ("uint8", (512, 512, 3)), "clicks": ("int32", (24, 3)), "prev_mask": ("float32", (512, 512, 1))}
    again = open_calibration_set(m, "embedded")
    assert all(np.array_equal(a.prev_mask, b.prev_mask) and np.array_equal(a.image, b.image)
               for a, b in zip(samples, again.iter_samples(), strict=True))


@pytest.mark.slow
def test_embedded_augments_to_reach_the_count():
    calib = build_calibration_set("embedded", count=200, held_out=0, force=True)
    m = calib.manifest
    augments = {json.dumps(e.instance["augment"], sort_keys=True) for e in m.entries}
    assert m.count == 200 and len({e.key for e in m.entries}) == 200 and len(augments) >= 20
    assert sum(e.prev_mask is not None for e in m.entries) == 100
