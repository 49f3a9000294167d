"""Build the int8 calibration set (and open one from its manifest); its samples stream.

    calib = build_calibration_set("../shared/data/coco128-seg")          # >= 100 photos or an error
    for sample in calib.iter_samples():                                 # rendered one at a time
        ...
    calib.save_manifest(bundle_dir)                                    # calibration_manifest.json

Half the samples (seeded) are a first click on a zero `prev_mask`; the other half are follow-ups:
a synthesized previous output (the object dilated, eroded or shifted, then blurred to 0..1) and
1-3 corrective clicks, so every input of the graph sees realistic ranges while calibrating.

A set is its manifest and the source its photos come from, no arrays: building one decodes each
photo once to choose its clicks and keeps only the manifest entry; `iter_samples` renders each
sample from its entry when asked (the photo decoded again), so a consumer that takes them one at a
time (the converter, through `quantize.calibration.representative_dataset`) holds one sample's
arrays, however many the set has. They are the arrays the entry describes, bit for bit, on every
pass.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from oace.calibration_data.manifest import (
    PREPROCESSING, CalibrationManifest, Entry, file_list_hash,
)
from oace.calibration_data.sampling import CalibrationSample, plan_clicks, render
from oace.calibration_data.selection import select_instances
from oace.calibration_data.sources import Instance, Source, open_source
from oace.errors import InputError, ToolkitError
from oace.evaluation_sets import refuse_evaluation_set

MIN_AREA = 0.005  # instances smaller than 0.5% of their photo are skipped
PROGRESS_MIN = 8  # a progress bar when planning more samples than this


@dataclasses.dataclass
class CalibrationSet:
    """A calibration set: its manifest, and the source (with the instance of each entry's key) its
    samples are rendered from, one at a time, when asked."""

    manifest: CalibrationManifest
    source: Source
    instances: Mapping[str, Instance]  # manifest entry key -> the source's instance
    seconds: float = 0.0

    @property
    def warning(self) -> str | None:
        return self.manifest.warning

    def __len__(self) -> int:
        return self.manifest.count

    def iter_samples(self, held_out: bool = False) -> Iterator[CalibrationSample]:
        """The calibration samples (or the held-out ones) in manifest order, each rendered from its
        entry when the caller asks for it: uint8 image [512,512,3], int32 clicks [24,3], float32
        prev_mask [512,512,1], bool mask [512,512] (no batch axis)."""
        for entry in self.manifest.held_out if held_out else self.manifest.entries:
            yield render_entry(self.source, self.instances[entry.key], entry)

    def arrays(self, held_out: bool = False) -> dict[str, np.ndarray]:
        """All calibration (or held-out) inputs stacked: image [N,512,512,3] uint8, clicks [N,24,3]
        int32, prev_mask [N,512,512,1] float32, mask [N,512,512] bool (e.g. for onnx2tf's -cind npy).
        Every sample in memory at once: for small sets and checks, not for calibrating."""
        samples = list(self.iter_samples(held_out))
        return {field: np.stack([getattr(s, field) for s in samples]) for field in ("image", "clicks", "prev_mask", "mask")}

    def save_manifest(self, out_dir: str | Path, provenance: dict[str, Any] | None = None) -> Path:
        """Write `calibration_manifest.json` into out_dir atomically (with provenance for a bundle)."""
        if provenance is None:
            from oace.reports import provenance as _provenance
            provenance = _provenance()
        return dataclasses.replace(self.manifest, provenance=provenance).save(Path(out_dir))

    def summary(self) -> dict[str, Any]:
        out = self.manifest.summary()
        out["build_seconds"] = round(self.seconds, 2)
        return out


def render_entry(source: Source, inst: Instance, entry: Entry) -> CalibrationSample:
    """One sample's network arrays, from its photo and its manifest entry (clicks, prev-mask recipe)."""
    sample = source.load(inst)
    if (sample.shape[1], sample.shape[0]) != tuple(entry.photo_size):
        raise ToolkitError(f"{source.describe()}/{entry.image}: photo is {sample.shape[1]}x{sample.shape[0]}, "
                           f"the calibration manifest says {entry.photo_size[0]}x{entry.photo_size[1]}")
    return render(sample, entry.name, entry.clicks, entry.prev_mask)


def _progress(items: Sequence[Any], desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="sample", disable=len(items) <= PROGRESS_MIN, file=sys.stderr, leave=False)


def _sample_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _follow_up_flags(rng: np.random.Generator, n: int) -> list[bool]:
    """Exactly floor(n/2) follow-up samples, at seeded positions."""
    flags = np.zeros(n, dtype=bool)
    flags[: n // 2] = True
    return [bool(f) for f in rng.permutation(flags)]


def _plan(source: Source, insts: Sequence[Instance], seed: int, offset: int, desc: str) -> list[Entry]:
    """The manifest entries of `insts`: each photo decoded once to choose its clicks, then dropped."""
    flags = _follow_up_flags(np.random.default_rng([seed, offset, 1]), len(insts))
    entries: list[Entry] = []
    for i, (inst, follow_up) in enumerate(zip(_progress(insts, desc), flags)):
        sample_seed = _sample_seed(seed, offset + i)
        sample = source.load(inst)
        try:
            clicks, recipe = plan_clicks(sample, np.random.default_rng(sample_seed), follow_up, sample_seed)
        except InputError as exc:
            raise InputError(f"{source.describe()}/{inst.image} ({inst.key}): {exc}") from None
        h, w = sample.shape
        entries.append(Entry(
            name=sample.name, key=inst.key, image=inst.image, image_id=inst.image_id, instance=inst.instance,
            class_id=inst.class_id, class_name=inst.class_name, photo_size=(w, h),
            clicks=tuple((int(x), int(y), int(label)) for x, y, label in clicks), prev_mask=recipe, seed=sample_seed,
        ))
    return entries


def build_calibration_set(source: str | Path, *, kind: str | None = None, count: int = 200, seed: int = 0,
                          held_out: int = 8, min_count: int = 100, force: bool = False,
                          min_area: float = MIN_AREA) -> CalibrationSet:
    """Select, click and preprocess a representative calibration set from `source`.

    `source`: a coco128-seg style YOLO-seg folder, a COCO root (val2017/ + annotations/), a folder of
    images with masks, or "embedded" (scikit-image photos, NOT COCO). Raises ToolkitError when the
    calibration samples come from fewer than `min_count` distinct photos, unless `force`.
    """
    if count < 1 or held_out < 0:
        raise InputError(f"calibration: count must be >= 1 and held_out >= 0 (got {count}, {held_out})")
    if str(source) != "embedded":
        refuse_evaluation_set(source, None, "calibrating")  # the same check as `oace train --data`
    t0 = time.perf_counter()
    src = open_source(source, kind)
    calib, held, _ = select_instances(src.instances(), count=count, held_out=held_out, seed=seed, min_area=min_area)
    n_images = len({i.image for i in calib})
    if not calib:
        raise ToolkitError(f"{src.describe()}: no usable object for calibration (all under {min_area:.1%} of their photo)")
    if n_images < min_count and not force:
        raise ToolkitError(
            f"calibration needs >= {min_count} images, found {n_images} in {src.describe()} "
            "(pass force=True / --force-calib to use them anyway)"
        )
    entries = _plan(src, calib, seed, 0, "calibration set")
    held_entries = _plan(src, held, seed, len(calib), "held-out set")
    files = src.file_hashes([*calib, *held])
    classes = {i.class_key for i in calib if i.class_id is not None or i.class_name}
    manifest = CalibrationManifest(
        source_kind=src.kind, source_name=src.name, is_coco=src.is_coco, seed=seed, count=len(entries),
        distinct_images=n_images, classes_covered=len(classes), min_count=min_count,
        forced=n_images < min_count, file_list_hash=file_list_hash(files), files=tuple(files),
        preprocessing={**PREPROCESSING, "min_area_fraction": min_area}, entries=tuple(entries),
        held_out=tuple(held_entries), warning=src.warning_for(n_images),
    )
    return CalibrationSet(manifest, src, {i.key: i for i in [*calib, *held]}, seconds=time.perf_counter() - t0)


def check_files(manifest: CalibrationManifest, source: Source, insts: Sequence[Instance]) -> None:
    """Raise a one-line ToolkitError naming the first file that differs from the manifest."""
    expected = dict(manifest.files)
    actual = dict(source.file_hashes(insts))
    for rel in sorted(expected):
        if rel not in actual:
            raise ToolkitError(f"{source.describe()}: {rel} listed in the calibration manifest is not used by this source")
        if actual[rel] != expected[rel]:
            raise ToolkitError(
                f"{source.describe()}/{rel}: file differs from the calibration manifest "
                f"(sha256 {actual[rel][:12]}.. != {expected[rel][:12]}..); rebuild the manifest or restore the file"
            )
    if file_list_hash(actual.items()) != manifest.file_list_hash:
        raise ToolkitError(f"{source.describe()}: file-list hash differs from the calibration manifest")


def open_calibration_set(manifest: CalibrationManifest | str | Path, source: str | Path) -> CalibrationSet:
    """The calibration set a manifest describes, over its source folder (or "embedded"): every
    instance found and every file as the manifest hashed it, else a one-line ToolkitError. Nothing is
    rendered here: `iter_samples` streams the exact samples the set was built with."""
    t0 = time.perf_counter()
    if not isinstance(manifest, CalibrationManifest):
        manifest = CalibrationManifest.load(manifest)
    src = open_source(source, manifest.source_kind)
    by_key = {i.key: i for i in src.instances()}
    wanted = [*manifest.entries, *manifest.held_out]
    missing = [e.key for e in wanted if e.key not in by_key]
    if missing:
        raise ToolkitError(
            f"{src.describe()}: {len(missing)} instances of the calibration manifest are missing "
            f"(first: {missing[0]}); is this the source it was built from ({manifest.source_name})?"
        )
    check_files(manifest, src, [by_key[e.key] for e in wanted])
    return CalibrationSet(manifest, src, {e.key: by_key[e.key] for e in wanted}, seconds=time.perf_counter() - t0)
