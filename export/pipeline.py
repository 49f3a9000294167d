"""The whole export: Segmenter -> ONNX -> SavedModel -> TFLite fp32/fp16/int8 (+ variants), verified.

Writes into out_dir:
  oace_segmenter.onnx, saved_model/, oace_segmenter_{fp32,fp16,int8}.tflite (+ int16x8,
  dynamic_range when asked), a metadata JSON beside each .tflite, calibration_manifest.json,
  export_report.json / .md, onnx2tf.log.
The whole folder is built in a hidden sibling (`.<name>.partial-<pid>`) and published by one
rename, the report written last: out_dir is the previous export or the new one, never a mix, and
the sizes and hashes in the report are those of the files beside it. Leftovers of killed runs are
removed by the next run. Verification runs after every export: a Flex op fails the export (nothing
is published); int8 mask IoU vs fp32 below `min_int8_iou` publishes the folder with the int8 file
renamed `oace_segmenter_int8.REFUSED.tflite` and a "failed" report, then fails.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from oace.export.metadata import bundle_metadata, write_metadata
from oace.export.onnx_export import check_opset, export_onnx, run_onnx
from oace.export.tf_convert import onnx_to_saved_model
from oace.export.tflite_convert import saved_model_to_tflite
from oace.tflite.inspection import inspect_tflite, require_no_flex
from oace.export.verify import Parity, compare, run_all
from oace.model.segmenter import Segmenter
from oace.artifacts import Artifact, publish_dir, staged_dir
from oace.errors import InputError, ToolkitError
from oace.litert import SegmentRunner
from oace.reports import markdown_table, provenance, write_report
from oace.quantize.calibration import representative_dataset
from oace.quantize.int8 import MODES, quantize
from oace.tflite import bundle_name, refused_name

PRECISIONS = ("fp32", "fp16", "int8")
ONNX_NAME = "oace_segmenter.onnx"
INT8_HINT = (
    "try: more or more varied calibration data (--calib with a COCO root or coco128-seg, --calib-count), "
    "keep per-channel weights (the default), or the int16x8 variant (--extra int16x8) for int16 activations"
)


@dataclasses.dataclass
class ExportResult:
    out_dir: Path
    artifacts: dict[str, Artifact]
    parity: list[Parity]
    report: dict[str, Any]
    ok: bool


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    precisions: Sequence[str] = PRECISIONS
    extra_modes: Sequence[str] = ()
    min_int8_iou: float = 0.90
    opset: int = 17
    model_version: str = "unversioned"
    weights: str = "unknown"
    verify_samples: int = 8

    def __post_init__(self) -> None:  # any sequence in, tuples kept: the record stays immutable
        object.__setattr__(self, "precisions", tuple(self.precisions))
        object.__setattr__(self, "extra_modes", tuple(self.extra_modes))


@dataclasses.dataclass
class _Verified:
    """The bundle's files (paths under the published folder), the ops in each .tflite, the parity
    rows, and whether int8 passed its gate."""

    artifacts: dict[str, Artifact]
    contents: dict[str, Any]
    parity: list[Parity]
    ok: bool


def _samples(calibration, limit: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    held = itertools.islice(calibration.iter_samples(held_out=True), limit)
    return [(s.image[None], s.clicks[None], s.prev_mask[None]) for s in held]


def export_bundle(
    model: Segmenter,
    out_dir: str | os.PathLike,
    *,
    calibration,
    opts: ExportOptions = ExportOptions(),
) -> ExportResult:
    """Run every step; see the module docstring for what lands in out_dir and how it is published."""
    check_request(model, opts)
    out = Path(out_dir)
    require_replaceable(out)
    with staged_dir(out) as work:
        result = build_bundle(model, work, out, calibration=calibration, opts=opts)
        publish_dir(work, out)
    if not result.ok:
        int8 = next(p for p in result.parity if p.candidate == "int8" and p.reference == "fp32")
        raise ToolkitError(
            f"int8 mask IoU vs fp32 is {int8.mask_iou:.3f} < {opts.min_int8_iou} on {int8.samples} held-out samples; "
            f"int8 file kept as {out / refused_name('int8')} (not for shipping; see {out / 'export_report.md'}); {INT8_HINT}"
        )
    return result


def check_options(opts: ExportOptions) -> None:
    """The request's numbers, refused before any work: the opset (export.onnx_export.OPSETS) and the
    int8 gate, a mask IoU in [0, 1]."""
    check_opset(opts.opset)
    if not 0.0 <= opts.min_int8_iou <= 1.0:  # NaN fails too
        raise InputError(f"--min-int8-iou {opts.min_int8_iou}: must be in [0, 1] (a mask IoU)")


def check_request(model: Segmenter, opts: ExportOptions) -> None:
    check_options(opts)
    unknown = [p for p in opts.precisions if p not in PRECISIONS] + [m for m in opts.extra_modes if m not in MODES or m == "int8"]
    if unknown:
        raise ToolkitError(f"unknown precision/variant {', '.join(unknown)}; precisions: {', '.join(PRECISIONS)}; "
                           f"extra variants: int16x8, dynamic_range")
    if not isinstance(model, Segmenter):
        raise ToolkitError(f"export needs a Segmenter (the chained bundle), got {type(model).__name__}")


def require_replaceable(out: Path, also: Sequence[str] = ()) -> None:
    """An export replaces its whole folder: refuse one that holds anything an export did not write."""
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if not _ours(p.name, also))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ToolkitError(f"--out {out}: holds files no export wrote ({shown}); an export replaces its whole "
                           "folder, so choose a new or empty folder")


def _ours(name: str, also: Sequence[str]) -> bool:
    return (name in (ONNX_NAME, "saved_model", "onnx2tf.log", "calibration_manifest.json", "export_report.json",
                     "export_report.md", *also)
            or (name.startswith("oace_segmenter_") and name.endswith((".tflite", ".json")))
            or (name.startswith(".") and name.endswith(".tmp")) or name.startswith(".onnx2tf-"))


def build_bundle(model: Segmenter, work: Path, out: Path, *, calibration, opts: ExportOptions) -> ExportResult:
    """Every step into the private folder `work`, which will be published as `out` (the paths the
    report records). Misses of the int8 gate rename the int8 file; nothing here raises for them."""
    model = model.eval()
    samples = _samples(calibration, opts.verify_samples)
    if not samples:
        raise ToolkitError("calibration set has no held-out samples to verify the export on")
    calib_info = calibration.summary()
    calibration.save_manifest(work)
    t_start = time.perf_counter()
    with torch.no_grad():
        outputs = {"torch": [model(*(torch.from_numpy(np.array(a)) for a in s)).numpy() for s in samples]}
    artifacts, contents = _convert(model, work, calibration, samples, outputs, opts, calib_info)
    parity = _parity(outputs, opts)
    int8 = next((p for p in parity if p.candidate == "int8" and p.reference == "fp32"), None)
    ok = int8 is None or int8.mask_iou >= opts.min_int8_iou
    if not ok:
        artifacts["int8"] = _refuse(work, artifacts["int8"], int8, opts.min_int8_iou)
    artifacts = {k: dataclasses.replace(a, path=out / a.path.relative_to(work)) for k, a in artifacts.items()}
    report = _report(model, out, _Verified(artifacts, contents, parity, ok), calib_info, opts, time.perf_counter() - t_start)
    write_report(work, "export_report", report, _markdown(report))  # last: a folder with a report is complete
    return ExportResult(out, artifacts, parity, report, ok)


def _convert(model, work: Path, calibration, samples, outputs: dict, opts: ExportOptions, calib_info) -> tuple[dict, dict]:
    artifacts: dict[str, Artifact] = {}
    contents: dict[str, Any] = {}
    bar = tqdm(["onnx", "saved_model", *opts.precisions, *opts.extra_modes], desc="export", unit="step")
    for step in bar:
        bar.set_postfix_str(step)
        if step == "onnx":
            artifacts["onnx"] = export_onnx(model, work / ONNX_NAME, opset=opts.opset)
            outputs["onnx"] = run_all(lambda *a: run_onnx(work / ONNX_NAME, *a), samples)
        elif step == "saved_model":
            artifacts["saved_model"] = onnx_to_saved_model(work / ONNX_NAME, work / "saved_model", log_path=work / "onnx2tf.log")
        else:
            path = work / bundle_name(step)
            if step in ("fp32", "fp16"):
                art = saved_model_to_tflite(work / "saved_model", path, precision=step)
            else:
                art = quantize(work / "saved_model", path, mode=step, representative=representative_dataset(calibration))
            contents[step] = inspect_tflite(path)
            require_no_flex(contents[step], path)
            if "segment" not in contents[step].signatures:
                raise ToolkitError(f"{bundle_name(step)}: lost its 'segment' signature in conversion")
            artifacts[step] = art
            outputs[step] = run_all(SegmentRunner(path, num_threads=2), samples)
            write_metadata(path.with_suffix(".json"), bundle_metadata(
                model, art, step, model_version=opts.model_version, calibration=calib_info))
    return artifacts, contents


def _parity(outputs: dict, opts: ExportOptions) -> list[Parity]:
    parity = [compare("torch", outputs["torch"], "onnx", outputs["onnx"])]
    for step in (*opts.precisions, *opts.extra_modes):
        ref = "fp32" if step != "fp32" and "fp32" in outputs else "torch"
        parity.append(compare(ref, outputs[ref], step, outputs[step]))
        if ref != "torch":
            parity.append(compare("torch", outputs["torch"], step, outputs[step]))
    return parity


def _refuse(work: Path, art: Artifact, gate: Parity, min_iou: float) -> Artifact:
    """Rename a refused int8 file (and its metadata JSON, which says why) so nobody ships it."""
    refused = work / refused_name("int8")
    os.rename(art.path, refused)
    meta_path = art.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta.update(file=refused.name, refused=f"int8 mask IoU vs fp32 {gate.mask_iou:.3f} < {min_iou}: not for shipping")
    write_metadata(refused.with_suffix(".json"), meta)
    meta_path.unlink()
    return dataclasses.replace(art, path=refused)


def _report(model, out: Path, verified: _Verified, calib, opts: ExportOptions, seconds: float) -> dict:
    params = sum(p.numel() for p in model.parameters())
    weights = opts.weights
    artifacts, contents, parity, ok = verified.artifacts, verified.contents, verified.parity, verified.ok
    return {
        "status": "ok" if ok else "failed",
        "model": {"version": opts.model_version, "weights": weights, "params": params, "config": dataclasses.asdict(model.cfg)},
        "calibration": calib,
        "artifacts": {k: {**a.to_json(), "bytes_per_param": round(a.bytes / params, 3)} for k, a in artifacts.items()},
        "refused": None if ok else {
            "int8": {"file": refused_name("int8"), "reason": f"int8 mask IoU vs fp32 below {opts.min_int8_iou}: not for shipping"}},
        "ops": {k: c.to_json() for k, c in contents.items()},
        "parity": [p.to_json() for p in parity],
        "int8_min_mask_iou": opts.min_int8_iou,
        "untrained_note": (
            "weights are untrained: outputs are near-constant, so mask IoU compares nearly empty masks; "
            "max/mean absolute error are the meaningful figures" if "untrained" in weights.lower() else None
        ),
        "seconds": round(seconds, 1),
        "out_dir": str(out),
        **provenance(),
    }


def _markdown(r: dict) -> str:
    lines = [f"# Export report: {r['status'].upper()}\n", f"Weights: {r['model']['weights']}  ", f"Params: {r['model']['params']:,}\n"]
    for refused in (r.get("refused") or {}).values():
        lines.append(f"**REFUSED: `{refused['file']}`: {refused['reason']}.**\n")
    calib = r["calibration"] or {}
    if calib.get("warning"):
        lines.append(f"**{calib['warning']}**\n")
    if calib:
        lines.append(
            f"Calibration: {calib['source_kind']} `{calib['source_name']}`: {calib['count']} samples from "
            f"{calib['distinct_images']} photos, {calib['classes_covered']} classes, {calib['follow_up_samples']} with "
            f"follow-up clicks and a previous mask, seed {calib['seed']}, file-list hash {calib['file_list_hash'][:12]}\n"
        )
    lines.append("## Files\n")
    lines.append(markdown_table(
        ["step", "file", "MB", "bytes/param", "seconds"],
        [(k, Path(a["path"]).name, f"{a['bytes'] / 1e6:.2f}", a["bytes_per_param"], f"{a['seconds']:.1f}") for k, a in r["artifacts"].items()],
    ))
    lines.append("\n## Parity on held-out calibration-style samples\n")
    lines.append(markdown_table(
        ["reference", "candidate", "samples", "max abs", "mean abs", "mask IoU (mean)", "mask IoU (min)"],
        [(p["reference"], p["candidate"], p["samples"], f"{p['max_abs']:.2e}", f"{p['mean_abs']:.2e}", f"{p['mask_iou']:.4f}", f"{p['min_mask_iou']:.4f}") for p in r["parity"]],
    ))
    if r.get("untrained_note"):
        lines.append(f"\nNote: {r['untrained_note']}.\n")
    lines.append(f"\nint8 passes when its mask IoU vs fp32 >= {r['int8_min_mask_iou']}.\n\n## Ops that compute in float\n")
    lines.append(markdown_table(
        ["file", "ops", "float ops", "Flex ops"],
        [(k, sum(c["op_counts"].values()), ", ".join(f"{o} x{n}" for o, n in c["float_ops"].items()) or "none", ", ".join(c["flex_ops"]) or "none")
         for k, c in r["ops"].items()],
    ))
    return "\n".join(lines)
