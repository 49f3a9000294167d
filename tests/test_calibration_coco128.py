"""The calibration set built from ../shared/data/coco128-seg (skipped cleanly when it is absent)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from oace.calibration_data import (
    COCO128_MANIFEST, CalibrationManifest, build_calibration_set, load_coco128_manifest, open_calibration_set,
)
from oace.calibration_data.builder import MIN_AREA
from oace.calibration_data.sources import open_source
from oace.errors import ToolkitError

pytestmark = pytest.mark.slow  # TensorFlow conversions / training loops: make test-fast leaves it out

COCO128 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco128-seg"


@pytest.fixture(scope="module")
def coco128() -> Path:
    if not (COCO128 / "labels").is_dir():
        pytest.skip(f"{COCO128} is absent: coco128-seg calibration tests skipped")
    return COCO128


@pytest.fixture(scope="module")
def built(coco128):
    return build_calibration_set(coco128)  # the defaults: count 200, seed 0, 8 held out, >= 100 photos


@pytest.fixture(scope="module")
def samples(built):
    """(calibration samples, held-out samples), rendered once: the tests below read them many times."""
    return list(built.iter_samples()), list(built.iter_samples(held_out=True))


@pytest.fixture(scope="module")
def usable(coco128):
    return [i for i in open_source(coco128).instances() if i.area_fraction >= MIN_AREA]


def test_200_samples_from_more_than_100_coco_photos(built, samples):
    m = built.manifest
    assert len(samples[0]) == len(built) == m.count == 200 and len(samples[1]) == len(m.held_out) == 8
    assert m.source_kind == "yolo_seg" and m.is_coco and m.warning is None and not m.forced
    assert m.distinct_images == len({e.image for e in m.entries}) == 112  # every usable photo not held out
    assert all(isinstance(e.image_id, int) and e.image.endswith(f"{e.image_id:012d}.jpg") for e in m.entries)


def test_held_out_photos_are_disjoint_from_calibration_photos(built):
    calib = {e.image for e in built.manifest.entries}
    held = [e.image for e in built.manifest.held_out]
    assert len(set(held)) == 8 and not calib & set(held)


def test_every_class_with_a_usable_instance_is_covered_before_any_repeat(built, usable):
    all_classes = {i.class_id for i in open_source(COCO128).instances()}
    usable_classes = {i.class_id for i in usable}
    assert len(all_classes) == 71 and len(usable_classes) == 67  # 4 classes only have objects < 0.5% of the photo
    classes = [e.class_id for e in built.manifest.entries]
    assert built.manifest.classes_covered == len(set(classes)) == 67
    assert len(set(classes[:67])) == 67  # the first 67 picks: one per class
    # then photos not used yet (one new photo per pick until all 112 are in), then class balance
    images = [e.image for e in built.manifest.entries]
    k = len(set(images[:67]))
    assert all(images[j] not in images[:j] for j in range(67, 67 + 112 - k))
    assert set(images[67 + 112 - k:]) <= set(images[:67 + 112 - k])
    counts = Counter(classes)
    assert counts.most_common(1)[0][0] == 0  # person: most photos of coco128 hold only people


def test_instances_are_not_tiny(built, usable, samples):
    by_key = {i.key: i for i in usable}
    assert all(e.key in by_key for e in built.manifest.entries)
    assert min(s.mask.mean() for s in samples[0]) >= 0.004  # 0.5% of the photo, after resizing


def _disk_inside(mask: np.ndarray, x: int, y: int, r: int = 5) -> bool:
    """Every pixel closer than r to (x, y) is object: scipy's edt at (x, y) would be >= r."""
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    near = (xx**2 + yy**2 < r * r) & (y + yy >= 0) & (y + yy < mask.shape[0]) & (x + xx >= 0) & (x + xx < mask.shape[1])
    return bool(mask[(y + yy)[near], (x + xx)[near]].all())


def test_clicks_inside_their_object_and_away_from_its_border(samples):
    far_enough = positives = negatives = 0
    for s in samples[0] + samples[1]:
        rows = s.clicks[s.clicks[:, 2] >= 0]
        assert rows[0, 2] == 1 and (s.clicks[len(rows):, 2] == -1).all()
        for k, (x, y, label) in enumerate(rows):
            if label == 1:
                positives += 1
                assert s.mask[y, x], (s.name, k)
            else:
                negatives += 1
                assert not s.mask[y, x], (s.name, k)
        x, y = rows[0, :2]
        if ndimage.distance_transform_edt(s.mask).max() >= 8:  # room for 5 px, and for the photo-grid mapping
            assert _disk_inside(s.mask, x, y), s.name
            far_enough += 1
    assert far_enough >= 190 and positives >= 250 and negatives >= 60


def test_half_single_click_half_follow_up_with_realistic_prev_masks(built, samples):
    zero = [s for s in samples[0] if not s.prev_mask.any()]
    follow = [s for s in samples[0] if s.prev_mask.any()]
    assert len(zero) == len(follow) == 100
    assert all((s.clicks[:, 2] >= 0).sum() == 1 for s in zero)
    n_clicks = Counter(int((s.clicks[:, 2] >= 0).sum()) for s in follow)
    assert set(n_clicks) <= {2, 3, 4} and min(n_clicks.values()) >= 20
    for s in follow:
        p = s.prev_mask
        assert p.dtype == np.float32 and p.min() >= 0.0 and p.max() <= 1.0
        assert p.max() > 0.9 and p.min() < 0.05 and ((p > 0.1) & (p < 0.9)).any(), s.name
        iou = ((p[..., 0] >= 0.49) & s.mask).sum() / ((p[..., 0] >= 0.49) | s.mask).sum()
        assert 0.2 < iou < 0.999, (s.name, iou)  # a plausible, imperfect previous output
    ops = Counter(e.prev_mask.op for e in built.manifest.entries if e.prev_mask)
    assert set(ops) == {"dilate", "erode", "shift"} and min(ops.values()) >= 15


def test_representative_yields_the_bundle_inputs_without_held_out(built, samples):
    from oace.quantize.calibration import representative_dataset

    items = list(representative_dataset(built)())
    assert len(items) == 200
    for d in items[:3]:
        assert list(d) == ["image", "clicks", "prev_mask"]
        assert d["image"].dtype == np.uint8 and d["image"].shape == (1, 512, 512, 3)
        assert d["clicks"].dtype == np.int32 and d["clicks"].shape == (1, 24, 3)
        assert d["prev_mask"].dtype == np.float32 and d["prev_mask"].shape == (1, 512, 512, 1)
    held = {s.name for s in samples[1]}
    assert not held & {s.name for s in samples[0]}
    arrays = built.arrays()
    assert arrays["image"].shape == (200, 512, 512, 3) and arrays["clicks"].shape == (200, 24, 3)


def test_committed_manifest_is_this_build_and_streams_identically(built, samples, coco128):
    committed = load_coco128_manifest()
    assert committed == built.manifest  # same seed, another process: identical selection and clicks
    assert json.loads(COCO128_MANIFEST.read_text()) == committed.to_json()
    again = open_calibration_set(committed, coco128)
    streamed = itertools.chain(again.iter_samples(), again.iter_samples(held_out=True))
    for a, b in zip(samples[0] + samples[1], streamed, strict=True):
        assert a.name == b.name
        for field in ("image", "clicks", "prev_mask", "mask"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (a.name, field)


def test_manifest_round_trip_with_provenance(built, tmp_path):
    path = built.save_manifest(tmp_path)
    assert path == tmp_path / "calibration_manifest.json"
    data = json.loads(path.read_text())
    assert data["count"] == 200 and data["seed"] == 0 and len(data["file_list_hash"]) == 64
    assert data["preprocessing"]["input_size"] == 512 and "provenance" in data
    assert len(data["files"]) == 120 * 2  # image + label file of each photo used (112 + 8 held out)
    loaded = CalibrationManifest.load(path)
    assert loaded == built.manifest and loaded.provenance is not None


def test_same_seed_same_arrays_other_seed_other_clicks(coco128):
    a = build_calibration_set(coco128, count=24, seed=0, held_out=0, force=True)
    b = build_calibration_set(coco128, count=24, seed=0, held_out=0, force=True)
    c = build_calibration_set(coco128, count=24, seed=1, held_out=0, force=True)
    assert a.manifest == b.manifest and a.manifest.forced
    assert all(np.array_equal(x.prev_mask, y.prev_mask) and np.array_equal(x.clicks, y.clicks)
               for x, y in zip(a.iter_samples(), b.iter_samples(), strict=True))
    assert [e.clicks for e in a.manifest.entries] != [e.clicks for e in c.manifest.entries]
    assert [e.key for e in a.manifest.entries] != [e.key for e in c.manifest.entries]
    assert len({e.class_id for e in c.manifest.entries}) == 24  # 24 picks, 24 classes


def test_too_few_photos_is_refused_before_any_decoding(coco128):
    with pytest.raises(ToolkitError) as err:
        build_calibration_set(coco128, count=60)
    assert str(err.value) == (f"calibration needs >= 100 images, found 60 in {coco128} "
                              "(pass force=True / --force-calib to use them anyway)")
