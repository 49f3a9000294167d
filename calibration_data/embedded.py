"""The offline default calibration source: scikit-image's bundled sample photos. NOT COCO.

For a fresh machine without COCO: six photos that `skimage.data` ships inside the package (no
pooch download), with hand-drawn outlines of their main objects in `embedded_objects.json`. Each
(photo, object) pair is augmented deterministically (horizontal flip, crops at 85% and 70% on a 3x3
grid of offsets) to reach the sample count. A set built from it is marked `is_coco=False` and
carries a loud warning; with only six distinct photos it always needs `force=True`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oace.calibration_data.sources import Instance, Source, sha256_of
from oace.model.data import Sample
from oace.errors import InputError

OBJECTS_JSON = Path(__file__).resolve().with_name("embedded_objects.json")
CROP_SCALES = (0.85, 0.7)
MIN_KEPT = 0.5  # an augmented variant keeps >= half of the object's pixels, else it is not offered


def warning_text(n_photos: int) -> str:
    return (f"NOT COCO: embedded scikit-image sample photos; int8 ranges calibrated on {n_photos} photos; "
            "build from coco128-seg or a COCO root for a shippable bundle")


@functools.lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    try:
        spec = json.loads(OBJECTS_JSON.read_text(encoding="utf-8"))
        return dict(spec["photos"])
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise InputError(f"{OBJECTS_JSON}: unreadable embedded object outlines ({exc})") from None


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as uint8 HxWx3 RGB (grayscale ones replicated)."""
    import skimage.data

    try:
        arr = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    except Exception as exc:  # pooch/network errors have assorted types
        raise InputError(f"skimage.data.{name}: not available offline ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3], dtype=np.uint8)


def _shape_mask(obj: dict[str, Any], height: int, width: int, where: str) -> np.ndarray:
    from skimage.draw import ellipse, polygon2mask

    if "polygon" in obj:
        pts = np.asarray(obj["polygon"], dtype=np.float64)
        return polygon2mask((height, width), pts[:, ::-1])  # (x, y) -> (row, col)
    if "ellipse" in obj:
        cx, cy, rx, ry = obj["ellipse"]
        m = np.zeros((height, width), dtype=bool)
        rr, cc = ellipse(cy, cx, ry, rx, shape=(height, width))
        m[rr, cc] = True
        return m
    raise InputError(f"{OBJECTS_JSON}: {where} has neither 'polygon' nor 'ellipse'")


@functools.lru_cache(maxsize=None)
def object_mask(photo_name: str, object_name: str) -> np.ndarray:
    """The object's bool mask on the original photo (occluders listed in 'minus' removed)."""
    objs = _spec()[photo_name]["objects"]
    h, w = photo(photo_name).shape[:2]
    mask = _shape_mask(objs[object_name], h, w, f"{photo_name}/{object_name}")
    for other in objs[object_name].get("minus", []):
        mask &= ~_shape_mask(objs[other], h, w, f"{photo_name}/{other}")
    return mask


def variants(width: int, height: int) -> list[tuple[str, int, dict[str, Any]]]:
    """(id, rank, augment) of every deterministic augmentation of a width x height photo."""
    out: list[tuple[str, int, dict[str, Any]]] = [
        ("orig", 0, {"flip": False, "crop": [0, 0, width, height]}),
        ("flip", 1, {"flip": True, "crop": [0, 0, width, height]}),
    ]
    for k, scale in enumerate(CROP_SCALES):
        cw, ch = round(width * scale), round(height * scale)
        for flip in (False, True):
            for y0 in (0, (height - ch) // 2, height - ch):
                for x0 in (0, (width - cw) // 2, width - cw):
                    vid = f"crop{round(scale * 100)}_{x0}_{y0}" + ("_flip" if flip else "")
                    out.append((vid, 2 + 2 * k + int(flip), {"flip": flip, "crop": [x0, y0, x0 + cw, y0 + ch]}))
    return out


def augment(arr: np.ndarray, aug: dict[str, Any]) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in aug["crop"])
    out = arr[y0:y1, x0:x1]
    if aug["flip"]:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


class EmbeddedSource(Source):
    kind = "embedded"
    is_coco = False
    name = "embedded"

    def __init__(self) -> None:
        self._instances: list[Instance] | None = None

    def instances(self) -> list[Instance]:
        if self._instances is not None:
            return self._instances
        out: list[Instance] = []
        for photo_name, spec in _spec().items():
            h, w = photo(photo_name).shape[:2]
            for object_name, obj in spec["objects"].items():
                full = object_mask(photo_name, object_name)
                for vid, rank, aug in variants(w, h):
                    m = augment(full, aug)
                    if m.sum() < MIN_KEPT * full.sum():
                        continue
                    out.append(Instance(
                        key=f"{photo_name}/{object_name}/{vid}", image=f"skimage.data.{photo_name}", image_id=None,
                        instance={"object": object_name, "augment": aug},
                        class_id=obj.get("coco_id"), class_name=object_name,
                        area_fraction=float(m.mean()), index=len(out), rank=rank,
                        group=f"{photo_name}/{object_name}",
                    ))
        self._instances = out
        return out

    def load(self, inst: Instance) -> Sample:
        photo_name = inst.image.removeprefix("skimage.data.")
        aug = inst.instance["augment"]
        image = augment(photo(photo_name), aug)
        mask = augment(object_mask(photo_name, str(inst.instance["object"])), aug)
        return Sample(image=image, mask=mask, ignore=np.zeros_like(mask), name=inst.key.replace("/", "_"))

    def file_paths(self, insts: Sequence[Instance]) -> list[tuple[str, Path]]:
        return [("calibration_data/embedded_objects.json", OBJECTS_JSON)]

    def file_hashes(self, insts: Sequence[Instance]) -> list[tuple[str, str]]:
        """The outlines json, and each photo's decoded pixels (shape + bytes): what scikit-image ships."""
        out = [("calibration_data/embedded_objects.json", sha256_of(OBJECTS_JSON))]
        for image in sorted({inst.image for inst in insts}):
            arr = photo(image.removeprefix("skimage.data."))
            out.append((image, hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()))
        return sorted(out)

    def warning_for(self, n_photos: int) -> str:
        return warning_text(n_photos)
