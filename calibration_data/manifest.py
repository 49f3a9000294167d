"""The calibration manifest: which photos, which object, which clicks, and how they were preprocessed.

`calibration_manifest.json` is enough to rebuild the exact int8 calibration set from its source
folder (`calibration_data.builder.open_calibration_set`): every entry names its photo (relative path, or the
scikit-image sample name), the instance whose mask the clicks were sampled in (COCO annotation id,
YOLO label line, mask file, or embedded object + augmentation), the clicks in the photo's pixels and
the recipe of its synthesized previous mask. `file_list_hash` is sha256 over the sorted
(relative path, file sha256) pairs of every file used, so a changed or missing file is caught.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from oace.model.segmenter import SegmenterConfig
from oace.artifacts import write_json_atomic
from oace.errors import InputError

MANIFEST_NAME = "calibration_manifest.json"
FORMAT = "oace-calibration-manifest/1"
SOURCE_KINDS = ("coco", "yolo_seg", "folder", "embedded")

SIZE = SegmenterConfig.input_size  # the model's input size and click rows (512, 24): the bundle contract's
MAX_CLICKS = SegmenterConfig.max_clicks
CLICK_MARGIN_PX = 5
PROB_THRESHOLD = SegmenterConfig.mask_threshold  # the model's mask threshold (the bundle metadata's)

PREPROCESSING: dict[str, Any] = {
    "input_size": SIZE,
    "image": "RGB uint8 photo resized (not cropped) to 512x512, PIL bilinear (model.predictor.resize_image)",
    "clicks": (
        "(x, y) photo pixels -> model.predictor.to_network_xy(x, y, W, H, 512); rows packed with "
        "model.segmenter.pack_clicks(..., 24): row 0 the first positive click, then follow-ups, -1 padding"
    ),
    "max_clicks": MAX_CLICKS,
    "object_mask": "photo mask as float32 resized bilinear to 512x512 (model.predictor.resize_prob), >= 0.5",
    "click_rules": (
        f"positive clicks inside the object, negative outside, never on ignore pixels, >= {CLICK_MARGIN_PX} px "
        "from the object border (photo and 512 grid) when the mask allows, else as far as possible"
    ),
    "prev_mask": (
        "single-click samples: zeros. Follow-up samples: the 512 object mask dilated (distance <= r), eroded "
        "(distance > r) or shifted by (dx, dy), scipy.ndimage.gaussian_filter(sigma), clipped to 0..1; follow-up "
        f"clicks fix its errors at threshold {PROB_THRESHOLD}: positive in the missed part, negative in the wrongly "
        "included part or nearby background"
    ),
    "prob_threshold": PROB_THRESHOLD,
}


@dataclasses.dataclass(frozen=True)
class PrevMaskRecipe:
    """How a follow-up sample's previous mask is synthesized from its 512x512 object mask."""

    seed: int
    op: str  # "dilate" | "erode" | "shift"
    radius: int  # px on the 512 grid (dilate/erode)
    dx: int  # px on the 512 grid (shift)
    dy: int
    sigma: float  # gaussian blur, px on the 512 grid

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PrevMaskRecipe":
        return cls(seed=int(d["seed"]), op=str(d["op"]), radius=int(d["radius"]), dx=int(d["dx"]),
                   dy=int(d["dy"]), sigma=float(d["sigma"]))


@dataclasses.dataclass(frozen=True)
class Entry:
    """One calibration sample: a photo, the instance clicked, its clicks (photo pixels) and prev-mask recipe."""

    name: str
    key: str  # the source's stable instance key (what open_calibration_set looks up)
    image: str  # path relative to the source root, or "skimage.data.<name>"
    image_id: int | None  # the COCO image id when known
    instance: Mapping[str, Any]  # {"annotation_id"} | {"label_file", "line"} | {"mask_file"} | {"object", "augment"}
    class_id: int | None
    class_name: str | None
    photo_size: tuple[int, int]  # (width, height) of the photo the clicks refer to
    clicks: tuple[tuple[int, int, int], ...]  # (x, y, label) photo pixels; label 1 positive, 0 negative
    prev_mask: PrevMaskRecipe | None  # None: first click, prev_mask all zeros
    seed: int  # the per-sample seed the clicks were drawn with

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "key": self.key, "image": self.image, "image_id": self.image_id,
            "instance": dict(self.instance), "class_id": self.class_id, "class_name": self.class_name,
            "photo_size": list(self.photo_size), "clicks": [list(c) for c in self.clicks],
            "prev_mask": None if self.prev_mask is None else self.prev_mask.to_json(), "seed": self.seed,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Entry":
        return cls(
            name=str(d["name"]), key=str(d["key"]), image=str(d["image"]),
            image_id=None if d.get("image_id") is None else int(d["image_id"]),
            instance=dict(d["instance"]),
            class_id=None if d.get("class_id") is None else int(d["class_id"]),
            class_name=d.get("class_name"),
            photo_size=(int(d["photo_size"][0]), int(d["photo_size"][1])),
            clicks=tuple((int(x), int(y), int(label)) for x, y, label in d["clicks"]),
            prev_mask=None if d.get("prev_mask") is None else PrevMaskRecipe.from_json(d["prev_mask"]),
            seed=int(d["seed"]),
        )


@dataclasses.dataclass(frozen=True)
class CalibrationManifest:
    """Everything needed to rebuild (and to report) an int8 calibration set."""

    source_kind: str  # one of SOURCE_KINDS
    source_name: str  # the source folder's name (no absolute path: the manifest is portable)
    is_coco: bool
    seed: int
    count: int  # calibration samples (held-out ones not included)
    distinct_images: int  # distinct photos among the calibration samples
    classes_covered: int  # distinct classes among the calibration samples (0 when classes are unknown)
    min_count: int
    forced: bool  # built below min_count because force=True
    file_list_hash: str
    files: tuple[tuple[str, str], ...]  # (relative path, sha256), sorted
    preprocessing: Mapping[str, Any]
    entries: tuple[Entry, ...]
    held_out: tuple[Entry, ...]
    warning: str | None = None
    provenance: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise InputError(f"calibration manifest: unknown source kind {self.source_kind!r}; known: {SOURCE_KINDS}")

    def summary(self) -> dict[str, Any]:
        """What a quantization report says about the set that was used."""
        return {
            "source_kind": self.source_kind, "source_name": self.source_name, "is_coco": self.is_coco,
            "count": self.count, "held_out": len(self.held_out), "distinct_images": self.distinct_images,
            "classes_covered": self.classes_covered, "seed": self.seed, "forced": self.forced,
            "follow_up_samples": sum(e.prev_mask is not None for e in self.entries),
            "file_list_hash": self.file_list_hash, "warning": self.warning,
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        out.update(self.summary())
        out.pop("held_out")
        out.update({
            "min_count": self.min_count,
            "files": [list(f) for f in self.files],
            "preprocessing": dict(self.preprocessing),
            "entries": [e.to_json() for e in self.entries],
            "held_out": [e.to_json() for e in self.held_out],
        })
        if self.provenance is not None:
            out["provenance"] = dict(self.provenance)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "calibration manifest") -> "CalibrationManifest":
        if d.get("format") != FORMAT:
            raise InputError(f"{where}: not a calibration manifest (format {d.get('format')!r}, expected {FORMAT!r})")
        try:
            return cls(
                source_kind=str(d["source_kind"]), source_name=str(d["source_name"]), is_coco=bool(d["is_coco"]),
                seed=int(d["seed"]), count=int(d["count"]), distinct_images=int(d["distinct_images"]),
                classes_covered=int(d["classes_covered"]), min_count=int(d["min_count"]), forced=bool(d["forced"]),
                file_list_hash=str(d["file_list_hash"]),
                files=tuple((str(p), str(h)) for p, h in d["files"]),
                preprocessing=dict(d["preprocessing"]),
                entries=tuple(Entry.from_json(e) for e in d["entries"]),
                held_out=tuple(Entry.from_json(e) for e in d["held_out"]),
                warning=d.get("warning"), provenance=d.get("provenance"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed calibration manifest ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> Path:
        """Write the manifest atomically; a folder gets `calibration_manifest.json` inside it."""
        p = Path(path)
        if p.is_dir() or not p.suffix:
            p = p / MANIFEST_NAME
        return write_json_atomic(p, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationManifest":
        p = Path(path)
        if p.is_dir():
            p = p / MANIFEST_NAME
        if not p.is_file():
            raise InputError(f"{p}: calibration manifest not found")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: not valid JSON ({exc})") from None
        return cls.from_json(data, where=str(p))


def file_list_hash(files: Iterable[tuple[str, str]]) -> str:
    """sha256 over the sorted (relative path, sha256) pairs."""
    h = hashlib.sha256()
    for rel, digest in sorted(files):
        h.update(rel.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
    return h.hexdigest()
