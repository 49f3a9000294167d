"""Where calibration photos come from: one adapter per source kind over the `model.data` loaders.

Every adapter lists its candidate instances without decoding any photo (class id and area fraction
come from the labels), loads one instance as a `model.data.Sample`, and hashes the files a set of
instances uses. Kinds: `yolo_seg` (coco128-seg layout), `coco` (val2017/ + annotations/instances
json), `folder` (images + masks paired by stem, the salient layout) and `embedded` (scikit-image
sample photos, `calibration_data.embedded`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from oace.model.data import Sample, get_dataset, read_label
from oace.errors import InputError, ToolkitError

# The 80 COCO classes in YOLO index order (coco128-seg's class ids).
COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)


@dataclasses.dataclass(frozen=True)
class Instance:
    """One object a calibration sample may click, known before any photo is decoded."""

    key: str  # stable and unique within the source
    image: str  # the photo (relative path or sample name): the unit of "distinct images"
    image_id: int | None
    instance: Mapping[str, Any]  # what the manifest records about the instance
    class_id: int | None
    class_name: str | None
    area_fraction: float  # object area / photo area
    index: int  # position in the source's list (its loader's item index)
    rank: int = 0  # preference within its class: 0 = original photo, higher = augmented
    group: str | None = None  # balance over this instead of the class (embedded: one group per drawn object)

    @property
    def class_key(self) -> str:
        if self.group is not None:
            return f"group:{self.group}"
        if self.class_id is not None:
            return f"id:{self.class_id}"
        return f"name:{self.class_name}" if self.class_name else "unknown"


class Source:
    """The interface every source kind implements."""

    kind: str = ""
    is_coco: bool = False
    name: str = ""
    root: Path | None = None
    def instances(self) -> list[Instance]:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, inst: Instance) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def file_paths(self, insts: Sequence[Instance]) -> list[tuple[str, Path]]:  # pragma: no cover - abstract
        """(relative path, file) of every file the instances are decoded from, deduplicated."""
        raise NotImplementedError

    def file_hashes(self, insts: Sequence[Instance]) -> list[tuple[str, str]]:
        return sorted((rel, sha256_of(path)) for rel, path in self.file_paths(insts))

    def describe(self) -> str:
        return str(self.root) if self.root is not None else self.name

    def warning_for(self, n_photos: int) -> str | None:
        """A warning the manifest and report must carry for this source (None: none)."""
        return None


def sha256_of(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


class DatasetSource(Source):
    """Shared part of the folder-backed kinds: a `model.data` loader and its items."""

    loader_name = ""

    def __init__(self, root: Path, **loader_kwargs: Any) -> None:
        self.ds = get_dataset(self.loader_name, root, **loader_kwargs)
        self.root = self.ds.root
        self.name = self.root.name

    def load(self, inst: Instance) -> Sample:
        return self.ds[inst.index]

    def file_paths(self, insts: Sequence[Instance]) -> list[tuple[str, Path]]:
        files = {Path(f) for inst in insts for f in self.ds._files(self.ds.items[inst.index])}
        return sorted((_rel(f, self.root), f) for f in files)


class YoloSegSource(DatasetSource):
    kind = "yolo_seg"
    loader_name = "yolo_seg"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        stems = {Path(item[0]).stem for item in self.ds.items}
        # coco128-seg and friends: COCO image ids as file stems, COCO80 class indices
        self.is_coco = "coco" in self.root.name.lower() and all(s.isdigit() for s in stems)

    def instances(self) -> list[Instance]:
        from pycocotools import mask as mask_utils

        from oace.model.data.yolo_seg import parse_label_line

        out: list[Instance] = []
        lines: dict[Path, list[str]] = {}
        scale = 1000.0  # area fraction of a normalized polygon, rasterized as COCO polygons are
        for i, (img, lbl, line_no) in enumerate(self.ds.items):
            text = lines.setdefault(lbl, lbl.read_text().splitlines())
            cls, pts = parse_label_line(text[line_no - 1], f"{lbl}:{line_no}")
            rle = mask_utils.frPyObjects([(pts * scale).reshape(-1).tolist()], int(scale), int(scale))
            area = float(mask_utils.area(rle).sum()) / scale**2
            rel_img, rel_lbl = _rel(img, self.root), _rel(lbl, self.root)
            out.append(Instance(
                key=f"{rel_lbl}:{line_no}", image=rel_img,
                image_id=int(img.stem) if img.stem.isdigit() else None,
                instance={"label_file": rel_lbl, "line": line_no},
                class_id=cls, class_name=COCO80[cls] if self.is_coco and 0 <= cls < len(COCO80) else None,
                area_fraction=area, index=i,
            ))
        return out


def _category_names(categories: Any, path: Path) -> dict[int, str]:
    """{category id: name} of a COCO json's `categories`; a malformed entry is an InputError naming it."""
    if not isinstance(categories, list):
        raise InputError(f"{path}: categories must be a list")
    out = {}
    for k, cat in enumerate(categories):
        cid = cat.get("id") if isinstance(cat, dict) else None
        if isinstance(cid, bool) or not isinstance(cid, int) or not isinstance(cat.get("name"), str):
            raise InputError(f"{path} category {k}: needs an integer id and a string name, got {cat!r:.80}")
        out[cid] = cat["name"]
    return out


class CocoSource(DatasetSource):
    kind = "coco"
    loader_name = "coco"
    is_coco = True

    def __init__(self, root: Path) -> None:
        # a full COCO annotations/ folder also holds captions_* and person_keypoints_* jsons
        found = sorted((Path(root) / "annotations").glob("instances_*.json"))
        preferred = [p for p in found if p.name == "instances_val2017.json"] or found
        super().__init__(root, **({"ann_file": preferred[0]} if len(preferred) == 1 else {}))

    def instances(self) -> list[Instance]:
        images = getattr(self.ds, "_images", None)
        data = json.loads(self.ds.ann_path.read_text(encoding="utf-8"))
        if images is None:
            images = {int(im["id"]): im for im in data["images"]}
        names = _category_names(data.get("categories", []), self.ds.ann_path)
        out: list[Instance] = []
        for i, ann in enumerate(self.ds.items):
            info = images[int(ann["image_id"])]
            file_name = str(info.get("file_name", str(info.get("coco_url", "")).rsplit("/", 1)[-1]))
            area = float(ann.get("area", 0.0)) / max(1.0, float(info.get("width", 1)) * float(info.get("height", 1)))
            cat = int(ann["category_id"]) if "category_id" in ann else None
            out.append(Instance(
                key=f"ann:{ann['id']}", image=_rel(self.ds.image_dir / file_name, self.root),
                image_id=int(ann["image_id"]), instance={"annotation_id": int(ann["id"])},
                class_id=cat, class_name=names.get(cat) if cat is not None else None,
                area_fraction=area, index=i,
            ))
        return out


class FolderSource(DatasetSource):
    """Any folder of photos with one binary mask each (images/ + masks/ paired by stem)."""

    kind = "folder"
    loader_name = "salient"

    def instances(self) -> list[Instance]:
        out: list[Instance] = []
        for i, (img, mask_path) in enumerate(self.ds.items):
            area = float((read_label(mask_path) > 127).mean())
            rel_mask = _rel(mask_path, self.root)
            out.append(Instance(
                key=rel_mask, image=_rel(img, self.root), image_id=None, instance={"mask_file": rel_mask},
                class_id=None, class_name=None, area_fraction=area, index=i,
            ))
        return out


def detect_kind(source: str | Path) -> str:
    """`embedded`, or the layout of a folder: yolo_seg (labels/), coco (a json), else folder."""
    if str(source) == "embedded":
        return "embedded"
    root = Path(source)
    if not root.is_dir():
        raise InputError(f"{root}: calibration source folder not found (or pass 'embedded')")
    if (root / "labels").is_dir() and (root / "images").is_dir():
        return "yolo_seg"
    if any((root / "annotations").glob("*.json")) or any(root.glob("*.json")):
        return "coco"
    return "folder"


def open_source(source: str | Path, kind: str | None = None) -> Source:
    """The adapter for `source` (a folder, or "embedded"), of `kind` or auto-detected."""
    kind = kind or detect_kind(source)
    if kind == "embedded":
        from oace.calibration_data.embedded import EmbeddedSource
        return EmbeddedSource()
    classes = {"yolo_seg": YoloSegSource, "coco": CocoSource, "folder": FolderSource}
    if kind not in classes:
        raise InputError(f"unknown calibration source kind {kind!r}; known: coco, yolo_seg, folder, embedded")
    try:
        return classes[kind](Path(source))
    except ToolkitError:
        raise
    except ImportError as exc:
        raise InputError(f"{source}: the {kind} source needs {exc.name} (pip install it)") from None
