"""Build the int8 calibration set (and rebuild one from its manifest).

    calib = build_calibration_set("../shared/data/coco128-seg")          # >= 100 photos or an error
    converter.representative_dataset = calib.representative           # dicts of the bundle's inputs
    calib.save_manifest(bundle_dir)                                    # calibration_manifest.json

Half the samples (seeded) are a first click on a zero `prev_mask`; the other half are follow-ups:
a synthesized previous output (the object dilated, eroded or shifted, then blurred to 0..1) and
1-3 corrective clicks, so every input of the graph sees realistic ranges while calibrating.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

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
PROGRESS_MIN = 8  # a progress bar when materializing more samples than this


@dataclasses.dataclass
class CalibrationSet:
    """Calibration samples (network arrays), the held-out ones, and the manifest that rebuilds them."""

    manifest: CalibrationManifest
    samples: list[CalibrationSample]
    held_out: list[CalibrationSample]
    seconds: float = 0.0

    @property
    def warning(self) -> str | None:
        return self.manifest.warning

    def __len__(self) -> int:
        return len(self.samples)

    def representative(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield the bundle inputs of each calibration sample (held-out ones excluded), batch of 1:
        {"image": uint8 [1,512,512,3], "clicks": int32 [1,24,3], "prev_mask": float32 [1,512,512,1]}.
        Pass the method itself as `TFLiteConverter.representative_dataset`."""
        for s in self.samples:
            yield {"image": s.image[None], "clicks": s.clicks[None], "prev_mask": s.prev_mask[None]}

    def arrays(self, held_out: bool = False) -> dict[str, np.ndarray]:
        """All calibration (or held-out) inputs stacked: image [N,512,512,3] uint8, clicks [N,24,3]
        int32, prev_mask [N,512,512,1] float32, mask [N,512,512] bool (e.g. for onnx2tf's -cind npy)."""
        samples = self.held_out if held_out else self.samples
        return {
            "image": np.stack([s.image for s in samples]),
            "clicks": np.stack([s.clicks for s in samples]),
            "prev_mask": np.stack([s.prev_mask for s in samples]),
            "mask": np.stack([s.mask for s in samples]),
        }

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


def _plan(source: Source, insts: Sequence[Instance], seed: int, offset: int,
          desc: str) -> tuple[list[Entry], list[CalibrationSample]]:
    flags = _follow_up_flags(np.random.default_rng([seed, offset, 1]), len(insts))
    entries: list[Entry] = []
    samples: list[CalibrationSample] = []
    for i, (inst, follow_up) in enumerate(zip(_progress(insts, desc), flags)):
        sample_seed = _sample_seed(seed, offset + i)
        sample = source.load(inst)
        try:
            clicks, recipe = plan_clicks(sample, np.random.default_rng(sample_seed), follow_up, sample_seed)
        except InputError as exc:
            raise InputError(f"{source.describe()}/{inst.image} ({inst.key}): {exc}") from None
        h, w = sample.shape
        entry = Entry(
            name=sample.name, key=inst.key, image=inst.image, image_id=inst.image_id, instance=inst.instance,
            class_id=inst.class_id, class_name=inst.class_name, photo_size=(w, h),
            clicks=tuple((int(x), int(y), int(label)) for x, y, label in clicks), prev_mask=recipe, seed=sample_seed,
        )
        entries.append(entry)
        samples.append(render(sample, entry.name, entry.clicks, entry.prev_mask))
    return entries, samples


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
    entries, samples = _plan(src, calib, seed, 0, "calibration set")
    held_entries, held_samples = _plan(src, held, seed, len(calib), "held-out set")
    files = src.file_hashes([*calib, *held])
    classes = {i.class_key for i in calib if i.class_id is not None or i.class_name}
    manifest = CalibrationManifest(
        source_kind=src.kind, source_name=src.name, is_coco=src.is_coco, seed=seed, count=len(entries),
        distinct_images=n_images, classes_covered=len(classes), min_count=min_count,
        forced=n_images < min_count, file_list_hash=file_list_hash(files), files=tuple(files),
        preprocessing={**PREPROCESSING, "min_area_fraction": min_area}, entries=tuple(entries),
        held_out=tuple(held_entries), warning=src.warning_for(n_images),
    )
    return CalibrationSet(manifest, samples, held_samples, seconds=time.perf_counter() - t0)


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


def materialize(manifest: CalibrationManifest | str | Path, source: str | Path) -> CalibrationSet:
    """Rebuild the exact calibration set a manifest describes from its source folder (or "embedded")."""
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

    def rebuild(entries: Sequence[Entry], desc: str) -> list[CalibrationSample]:
        out = []
        for e in _progress(entries, desc):
            sample = src.load(by_key[e.key])
            if (sample.shape[1], sample.shape[0]) != tuple(e.photo_size):
                raise ToolkitError(f"{src.describe()}/{e.image}: photo is {sample.shape[1]}x{sample.shape[0]}, "
                                   f"the calibration manifest says {e.photo_size[0]}x{e.photo_size[1]}")
            out.append(render(sample, e.name, e.clicks, e.prev_mask))
        return out

    samples = rebuild(manifest.entries, "calibration set")
    held = rebuild(manifest.held_out, "held-out set")
    return CalibrationSet(manifest, samples, held, seconds=time.perf_counter() - t0)
