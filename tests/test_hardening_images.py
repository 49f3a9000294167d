"""Issue 15, class 3 (images): a photo over the pixel limit is refused from its header, before any
decoding, in one line that says the limit; a big photo under it is downscaled on load (JPEGs decode
reduced), so one 10000 x 10000 photo no longer costs gigabytes. One loader serves datasets, eval,
training and calibration: model.data.base.read_rgb / read_label."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oace.model.data import base
from oace.model.data.base import ImageLimits, bounded_size, image_size, read_label, read_rgb
from oace.errors import InputError
from tests.cli_contract import assert_refused, run_oace


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height RGB pixels (its data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def photo(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A smooth seeded photo (a colour gradient plus noise), saved by its suffix's format."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    img = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    img = img + rng.normal(0, 4, (1, width, 3)).astype(np.float32)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def yolo_set(root: Path, image_name: str, make_image) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    make_image(root / "images" / "train" / image_name)
    (root / "labels" / "train" / (Path(image_name).stem + ".txt")).write_text("0 0.3 0.3 0.7 0.3 0.7 0.7 0.3 0.7\n")
    return root


# --- the limits, unit by unit -----------------------------------------------------------------------
@pytest.mark.parametrize("size, side, expected", [
    ((640, 480), 4096, (640, 480)), ((10000, 10000), 4096, (4096, 4096)), ((8000, 2000), 1000, (1000, 250)),
    ((3, 20000), 4096, (1, 4096)),
])
def test_bounded_size_keeps_the_aspect_and_the_longer_side_under_the_limit(size, side, expected):
    assert bounded_size(*size, side) == expected


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (12_000, 12_000)])
def test_a_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path, width, height):
    """100000^2 trips Pillow's own bomb error, 12000^2 (144 MP) only our 120 MP limit: both one line."""
    p = png_claiming(tmp_path / "bomb.png", width, height)
    for read in (read_rgb, read_label, image_size):
        with pytest.raises(InputError) as exc:
            read(p)
        msg = str(exc.value)
        assert str(p) in msg and "limit of 120 megapixels" in msg and "\n" not in msg


def test_the_limit_is_a_setting(tmp_path):
    p = photo(tmp_path / "a.png", 300, 200)
    with pytest.raises(InputError, match=r"300x200 = 0.1 megapixels, over the limit of 0 megapixels"):
        read_rgb(p, ImageLimits(max_pixels=50_000))
    assert read_rgb(p, ImageLimits(max_pixels=60_000)).shape == (200, 300, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_big_photo_is_downscaled_on_load_and_its_mask_follows(tmp_path, suffix):
    p = photo(tmp_path / f"big{suffix}", 3000, 1800)
    limits = ImageLimits(max_side=1000)
    rgb = read_rgb(p, limits)
    assert rgb.shape == (600, 1000, 3) and rgb.dtype == np.uint8
    full = read_rgb(p, ImageLimits(max_side=4000))
    assert full.shape == (1800, 3000, 3)
    small = np.asarray(Image.fromarray(full).resize((1000, 600), Image.BILINEAR), dtype=np.float32)
    assert np.abs(rgb.astype(np.float32) - small).mean() < 6  # the same picture, smaller
    mask = np.zeros((1800, 3000), np.uint8)
    mask[600:1200, 900:2100] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    label = read_label(tmp_path / "mask.png", limits=limits)
    assert label.shape == (600, 1000) and set(np.unique(label)) == {0, 255}
    assert abs((label > 127).mean() - (mask > 127).mean()) < 0.01


def test_coco_polygons_follow_a_downscaled_photo(tmp_path, monkeypatch):
    from oace.model.data.coco_json import CocoJsonDataset

    (tmp_path / "annotations").mkdir()
    (tmp_path / "images" / "val").mkdir(parents=True)
    photo(tmp_path / "images" / "val" / "a.jpg", 2000, 1000)
    square = [500.0, 250.0, 1500.0, 250.0, 1500.0, 750.0, 500.0, 750.0]
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 2000, "height": 1000}],
        "annotations": [{"id": 5, "image_id": 1, "iscrowd": 0, "area": 500000.0, "segmentation": [square]}]}))
    monkeypatch.setattr(base, "IMAGE_LIMITS", ImageLimits(max_side=500))
    sample = CocoJsonDataset(tmp_path)[0]
    assert sample.image.shape == (250, 500, 3) and sample.mask.shape == (250, 500)
    assert abs(sample.mask.mean() - 0.25) < 0.01


# --- from outside: eval ---------------------------------------------------------------------------------
EVAL = ["--checkpoint", "reference", "--limit", "1", "--max-clicks", "1", "--robustness-trials", "0",
        "--containment-trials", "0", "--no-progress"]


@pytest.mark.slow
def test_eval_refuses_an_image_over_the_limit_in_one_line(tmp_path):
    root = yolo_set(tmp_path / "yolo", "bomb.png", lambda p: png_claiming(p, 100_000, 100_000))
    r = run_oace(["eval", "--dataset", "yolo_seg", "--data-root", root, "--out", tmp_path / "eval", *EVAL])
    assert_refused(r, str(root / "images" / "train" / "bomb.png"), "120 megapixels", max_rss_mb=3000, max_seconds=120)


@pytest.mark.slow
def test_eval_of_a_10000_pixel_square_photo_stays_bounded(tmp_path):
    root = yolo_set(tmp_path / "yolo", "huge.jpg", lambda p: photo(p, 10_000, 10_000))
    r = run_oace(["eval", "--dataset", "yolo_seg", "--data-root", root, "--out", tmp_path / "eval", *EVAL], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.peak_rss_mb < 3000, f"peak RSS {r.peak_rss_mb:.0f} MB"
    assert (tmp_path / "eval").is_dir()
