"""Dataset loaders on small synthetic folders in every supported layout, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.model.data import get_dataset
from oace.model.data.base import read_label, read_rgb
from oace.errors import InputError

H, W = 12, 16


def rgb(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def grabcut_mask(h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[3:9, 4:12] = 128     # band
    m[4:8, 5:11] = 255     # object inside it
    return m


def write_grabcut(root: Path, stem: str, image: np.ndarray | Image.Image, mask: np.ndarray | None = None,
                  suffix: str = ".png") -> None:
    (root / "data_GT").mkdir(parents=True, exist_ok=True)
    (root / "boundary_GT").mkdir(parents=True, exist_ok=True)
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    img.save(root / "data_GT" / f"{stem}{suffix}")
    m = grabcut_mask(*img.size[::-1]) if mask is None else mask
    Image.fromarray(m).save(root / "boundary_GT" / f"{stem}.bmp")


def test_grabcut_band_is_ignored_and_object_is_above_128(tmp_path):
    image = rgb(1)
    write_grabcut(tmp_path, "a", image)
    ds = get_dataset("GrabCut", tmp_path)
    s = ds[0]
    assert len(ds) == 1 and s.name == "a"
    assert np.array_equal(s.image, image) and s.image.dtype == np.uint8
    assert s.mask.sum() == 4 * 6 and s.mask[4:8, 5:11].all()
    assert s.ignore.sum() == 6 * 8 - 4 * 6 and not (s.mask & s.ignore).any()


def test_images_in_odd_modes_are_decoded_to_rgb(tmp_path):
    base = rgb(2)
    gray = Image.fromarray(base[..., 0], "L")
    rgba = Image.fromarray(np.dstack([base, np.full((H, W), 7, np.uint8)]), "RGBA")
    pal = Image.fromarray((base[..., 0] > 127).astype(np.uint8), "P")
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    wide = Image.fromarray(np.full((H, W), 32896, np.uint16))   # 16-bit: 32896 / 257 = 128
    write_grabcut(tmp_path, "gray", gray)
    write_grabcut(tmp_path, "rgba", rgba)
    write_grabcut(tmp_path, "pal", pal)
    write_grabcut(tmp_path, "wide16", wide)
    write_grabcut(tmp_path, "my photo 1", base, suffix=".jpg")
    ds = get_dataset("GrabCut", tmp_path)
    got = {s.name: s for s in ds}
    assert set(got) == {"gray", "rgba", "pal", "wide16", "my photo 1"}
    assert np.array_equal(got["gray"].image, np.repeat(base[..., :1], 3, axis=2))
    assert np.array_equal(got["rgba"].image, base)
    want_pal = np.where((base[..., 0] > 127)[..., None], [200, 100, 50], [10, 20, 30])
    assert np.array_equal(got["pal"].image, want_pal)
    assert (got["wide16"].image == 128).all()
    assert got["my photo 1"].image.shape == (H, W, 3)
    assert all(s.image.dtype == np.uint8 and s.image.ndim == 3 for s in got.values())


def test_exif_rotated_image_is_shown_upright(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)   # left half red
    stored[:, 20:] = (0, 0, 255)   # right half blue
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6               # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    out = read_rgb(path)
    assert out.shape == (40, 20, 3)                       # upright: 20 wide, 40 high
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60     # stored left (red) is now on top
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60


def test_16bit_and_palette_masks(tmp_path):
    m16 = np.zeros((H, W), np.uint16)
    m16[2:5, 2:5] = 65535
    m16[0, 0] = 32896
    Image.fromarray(m16).save(tmp_path / "m16.png")
    lv = read_label(tmp_path / "m16.png")
    assert lv[3, 3] == 255 and lv[0, 0] == 128 and lv[10, 10] == 0
    pal = Image.fromarray(np.eye(H, W, dtype=np.uint8), "P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)     # DAVIS style: index 1 is dark red
    pal.save(tmp_path / "pal.png")
    lv = read_label(tmp_path / "pal.png", reduce="max")
    assert lv[3, 3] == 128 and lv[3, 4] == 0


def test_truncated_image_is_an_error_naming_the_file(tmp_path):
    write_grabcut(tmp_path, "cut", rgb(3, 64, 64), suffix=".jpg")
    path = tmp_path / "data_GT" / "cut.jpg"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    ds = get_dataset("GrabCut", tmp_path)
    with pytest.raises(InputError, match=r"cut\.jpg: unreadable or truncated"):
        ds[0]


def test_garbage_image_is_an_error_naming_the_file(tmp_path):
    write_grabcut(tmp_path, "junk", rgb(3))
    (tmp_path / "data_GT" / "junk.png").write_bytes(b"hello, not an image")
    with pytest.raises(InputError, match=r"junk\.png: not a readable image"):
        get_dataset("GrabCut", tmp_path)[0]


def test_mask_of_another_size_is_an_error_naming_both_files(tmp_path):
    write_grabcut(tmp_path, "big", rgb(4), mask=grabcut_mask(H + 1, W))
    with pytest.raises(InputError, match=r"big\.bmp: mask is 16x13 \(WxH\) but its image .*big\.png is 16x12"):
        get_dataset("GrabCut", tmp_path)[0]


def test_empty_mask_is_an_error(tmp_path):
    write_grabcut(tmp_path, "nothing", rgb(5), mask=np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match=r"nothing\.bmp: empty mask"):
        get_dataset("GrabCut", tmp_path)[0]


def test_missing_mask_and_missing_folder_are_errors(tmp_path):
    write_grabcut(tmp_path, "ok", rgb(6))
    Image.fromarray(rgb(7)).save(tmp_path / "data_GT" / "orphan.png")
    with pytest.raises(InputError, match=r"orphan\.png: no mask with stem 'orphan'"):
        get_dataset("GrabCut", tmp_path)
    with pytest.raises(InputError, match=r"masks: folder not found"):
        get_dataset("Berkeley", tmp_path)
    with pytest.raises(InputError, match="unknown dataset 'Pascal'"):
        get_dataset("Pascal", tmp_path)


def test_berkeley_reads_rgb_masks_and_parent_root(tmp_path):
    root = tmp_path / "Berkeley"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(rgb(8)).save(root / "images" / "101a.jpg")
    m = np.repeat(grabcut_mask()[..., None], 3, axis=2)
    Image.fromarray(m).save(root / "masks" / "101a.png")
    ds = get_dataset("berkeley", tmp_path)            # the parent: root/Berkeley is found
    assert ds.root == root and ds[0].mask.sum() == 24 and ds[0].ignore.sum() == 24


def test_davis_and_coco_mval_take_any_nonzero_as_object(tmp_path):
    for name in ("DAVIS", "COCO_MVal"):
        root = tmp_path / name
        (root / "img").mkdir(parents=True)
        (root / "gt").mkdir()
        Image.fromarray(rgb(9)).save(root / "img" / "cat 00_1.jpg")
        m = np.zeros((H, W, 3), np.uint8)
        m[1:3, 1:4, 0] = 1                              # only the red channel, value 1
        Image.fromarray(m).save(root / "gt" / "cat 00_1.png")
        s = get_dataset(name, tmp_path)[0]
        assert s.name == "cat 00_1" and s.mask.sum() == 6 and not s.ignore.any()


def test_sbd_gives_one_sample_per_instance(tmp_path):
    from scipy.io import savemat

    (tmp_path / "img").mkdir()
    (tmp_path / "inst").mkdir()
    Image.fromarray(rgb(10)).save(tmp_path / "img" / "2008_000001.jpg")
    seg = np.zeros((H, W), np.uint8)
    seg[1:4, 1:4] = 1
    seg[6:10, 6:12] = 3
    savemat(tmp_path / "inst" / "2008_000001.mat",
            {"GTinst": {"Segmentation": seg, "Boundaries": np.zeros((1, 2), object), "Categories": np.array([[15], [7]])}})
    (tmp_path / "val.txt").write_text("2008_000001\n")
    ds = get_dataset("SBD", tmp_path)
    assert len(ds) == 2
    a, b = ds[0], ds[1]
    assert (a.name, int(a.mask.sum())) == ("2008_000001_1", 9)
    assert (b.name, int(b.mask.sum())) == ("2008_000001_3", 24)


def write_coco(root: Path, lvis: bool = False) -> None:
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "val2017").mkdir(parents=True)
    Image.fromarray(rgb(11, 20, 30)).save(root / "images" / "val2017" / "000000000042.jpg")
    img = {"id": 42, "height": 20, "width": 30}
    img.update({"coco_url": "http://x/val2017/000000000042.jpg"} if lvis else {"file_name": "000000000042.jpg"})
    from pycocotools import mask as mu
    rle_src = np.zeros((20, 30), np.uint8, order="F")
    rle_src[10:15, 20:25] = 1
    rle = mu.encode(rle_src)
    rle["counts"] = rle["counts"].decode()
    anns = [
        {"id": 1, "image_id": 42, "iscrowd": 0, "area": 16, "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
        {"id": 2, "image_id": 42, "iscrowd": 0, "area": 25, "segmentation": rle},
        {"id": 3, "image_id": 42, "iscrowd": 1, "area": 4,
         "segmentation": {"size": [20, 30], "counts": [20 * 29, 20]}},   # last column: crowd
        {"id": 4, "image_id": 42, "iscrowd": 0, "area": 0, "segmentation": [[1, 1, 1, 1, 1, 1]]},
    ]
    name = "lvis_v1_val2017.json" if lvis else "instances_val2017.json"
    (root / "annotations" / name).write_text(json.dumps({"images": [img], "annotations": anns, "categories": []}))


@pytest.mark.parametrize("lvis", [False, True])
def test_coco_json_polygons_rle_and_crowd_ignore(tmp_path, lvis):
    pytest.importorskip("pycocotools")
    write_coco(tmp_path, lvis)
    ds = get_dataset("LVIS" if lvis else "COCO", tmp_path)
    assert len(ds) == 2 and ds.notes == ["skipped 1 annotations with area < 1.0"]
    poly, rle = ds[0], ds[1]
    assert poly.name == "000000000042_1" and poly.mask.sum() == 16 and poly.mask[2:6, 2:6].all()
    assert rle.mask.sum() == 25 and rle.mask[10:15, 20:25].all()
    assert poly.ignore.sum() == 20 and poly.ignore[:, 29].all()


def test_yolo_seg_polygons_one_sample_per_line(tmp_path):
    pytest.importorskip("pycocotools")
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.fromarray(rgb(12, 8, 8)).save(tmp_path / "images" / "train" / "a.jpg")
    Image.fromarray(rgb(13, 8, 8)).save(tmp_path / "images" / "train" / "empty.jpg")   # no label file
    (tmp_path / "labels" / "train" / "a.txt").write_text(
        "0 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n5 0 0 0.5 0 0 0.5\n"
    )
    (tmp_path / "labels" / "train" / "ghost.txt").write_text("1 0 0 1 0 1 1\n")          # no image
    ds = get_dataset("yolo_seg", tmp_path)
    assert len(ds) == 2
    assert sorted(ds.notes) == ["1 images without a label file (no objects) skipped",
                                "1 label files without an image skipped"]
    sq = ds[0]
    want = np.zeros((8, 8), bool)
    want[2:6, 2:6] = True          # pixel centres 2.5..5.5 lie inside the square 2..6
    assert sq.name == "a_1" and np.array_equal(sq.mask, want)
    assert ds[1].mask[0, 0] and not ds[1].mask[7, 7]


def test_yolo_seg_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(rgb(14, 8, 8)).save(tmp_path / "images" / "b.jpg")
    (tmp_path / "labels" / "b.txt").write_text("0 0.1 0.1 0.5 0.5\n")
    with pytest.raises(InputError, match=r"b\.txt:1: a polygon needs >= 3"):
        get_dataset("yolo_seg", tmp_path)


def test_salient_folders_threshold_soft_masks(tmp_path):
    (tmp_path / "DUTS-TR-Image").mkdir()
    (tmp_path / "DUTS-TR-Mask").mkdir()
    Image.fromarray(rgb(15)).save(tmp_path / "DUTS-TR-Image" / "n01_1.jpg")
    soft = np.zeros((H, W), np.uint8)
    soft[2:6, 2:6] = 255
    soft[6, 2:6] = 127      # soft edge: not object
    soft[7, 2:6] = 128      # soft edge: object
    Image.fromarray(soft).save(tmp_path / "DUTS-TR-Mask" / "n01_1.png")
    s = get_dataset("salient", tmp_path)[0]
    assert s.mask.sum() == 16 + 4 and not s.mask[6].any() and s.mask[7, 2:6].all()


def test_content_hash_follows_the_files(tmp_path):
    write_grabcut(tmp_path, "a", rgb(16))
    h1 = get_dataset("GrabCut", tmp_path).content_hash()
    assert h1 == get_dataset("GrabCut", tmp_path).content_hash() and len(h1) == 64
    write_grabcut(tmp_path, "a", rgb(17))
    assert get_dataset("GrabCut", tmp_path).content_hash() != h1
