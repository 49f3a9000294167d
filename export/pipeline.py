"""The whole export: Segmenter -> ONNX -> SavedModel -> TFLite fp32/fp16/int8 (+ variants), verified.

Writes into out_dir:
  oace_segmenter.onnx, saved_model/, oace_segmenter_{fp32,fp16,int8}.tflite (+ int16x8,
  dynamic_range when asked), a metadata JSON beside each .tflite, calibration_manifest.json,
  export_report.json / .md, onnx2tf.log.
Every file is written atomically. Verification runs after every export: a Flex op fails the
export; int8 mask IoU vs fp32 below `min_int8_iou` fails it after the report is written.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from export.metadata import bundle_metadata, write_metadata
from export.onnx_export import export_onnx, run_onnx
from export.tf_convert import onnx_to_saved_model
from export.tflite_convert import saved_model_to_tflite
from export.tflite_inspect import inspect_tflite, require_no_flex
from export.verify import Parity, compare, run_all
from model.segmenter import Segmenter
from oace.artifacts import Artifact
from oace.errors import ToolkitError
from oace.litert import SegmentRunner
from oace.reports import markdown_table, provenance, write_report
from quantize.int8 import MODES, bundle_name, quantize

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


def _samples(calibration, limit: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    held = list(calibration.held_out)[:limit]
    return [(s.image[None], s.clicks[None], s.prev_mask[None]) for s in held]


def export_bundle(
    model: Segmenter,
    out_dir: str | os.PathLike,
    *,
    calibration,
    precisions: Sequence[str] = PRECISIONS,
    extra_modes: Sequence[str] = (),
    min_int8_iou: float = 0.90,
    opset: int = 17,
    model_version: str = "unversioned",
    weights: str = "unknown",
    verify_samples: int = 8,
) -> ExportResult:
    """Run every step; see the module docstring for what lands in out_dir."""
    unknown = [p for p in precisions if p not in PRECISIONS] + [m for m in extra_modes if m not in MODES or m == "int8"]
    if unknown:
        raise ToolkitError(f"unknown precision/variant {', '.join(unknown)}; precisions: {', '.join(PRECISIONS)}; "
                           f"extra variants: int16x8, dynamic_range")
    if not isinstance(model, Segmenter):
        raise ToolkitError(f"export needs a Segmenter (the chained bundle), got {type(model).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    samples = _samples(calibration, verify_samples)
    if not samples:
        raise ToolkitError("calibration set has no held-out samples to verify the export on")
    calib_info = calibration.summary()
    calibration.save_manifest(out)

    steps = ["onnx", "saved_model", *precisions, *extra_modes]
    artifacts: dict[str, Artifact] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    contents: dict[str, Any] = {}
    t_start = time.perf_counter()
    with torch.no_grad():
        outputs["torch"] = [model(*(torch.from_numpy(np.array(a)) for a in s)).numpy() for s in samples]
    bar = tqdm(steps, desc="export", unit="step")
    for step in bar:
        bar.set_postfix_str(step)
        if step == "onnx":
            artifacts["onnx"] = export_onnx(model, out / ONNX_NAME, opset=opset)
            outputs["onnx"] = run_all(lambda *a: run_onnx(out / ONNX_NAME, *a), samples)
        elif step == "saved_model":
            artifacts["saved_model"] = onnx_to_saved_model(out / ONNX_NAME, out / "saved_model", log_path=out / "onnx2tf.log")
        else:
            path = out / bundle_name(step)
            if step in ("fp32", "fp16"):
                art = saved_model_to_tflite(out / "saved_model", path, precision=step)
            else:
                art = quantize(out / "saved_model", path, mode=step, representative=calibration.representative)
            contents[step] = inspect_tflite(path)
            require_no_flex(contents[step], path)
            if "segment" not in contents[step].signatures:
                raise ToolkitError(f"{path}: lost its 'segment' signature in conversion")
            artifacts[step] = art
            outputs[step] = run_all(SegmentRunner(path, num_threads=2), samples)
            write_metadata(path.with_suffix(".json"), bundle_metadata(
                model, art, step, model_version=model_version, calibration=calib_info))

    parity = [compare("torch", outputs["torch"], "onnx", outputs["onnx"])]
    for step in (*precisions, *extra_modes):
        ref = "fp32" if step != "fp32" and "fp32" in outputs else "torch"
        parity.append(compare(ref, outputs[ref], step, outputs[step]))
        if ref != "torch":
            parity.append(compare("torch", outputs["torch"], step, outputs[step]))
    int8 = next((p for p in parity if p.candidate == "int8" and p.reference == "fp32"), None)
    ok = int8 is None or int8.mask_iou >= min_int8_iou
    report = _report(model, out, artifacts, contents, parity, calib_info, weights, model_version, min_int8_iou, ok,
                     time.perf_counter() - t_start)
    write_report(out, "export_report", report, _markdown(report))
    if not ok:
        raise ToolkitError(
            f"int8 mask IoU vs fp32 is {int8.mask_iou:.3f} < {min_int8_iou} on {int8.samples} held-out samples "
            f"({out / 'export_report.md'}); {INT8_HINT}"
        )
    return ExportResult(out, artifacts, parity, report, ok)


def _report(model, out, artifacts, contents, parity, calib, weights, model_version, min_iou, ok, seconds) -> dict:
    params = sum(p.numel() for p in model.parameters())
    return {
        "status": "ok" if ok else "failed",
        "model": {"version": model_version, "weights": weights, "params": params, "config": dataclasses.asdict(model.cfg)},
        "calibration": calib,
        "artifacts": {k: {**a.to_json(), "bytes_per_param": round(a.bytes / params, 3)} for k, a in artifacts.items()},
        "ops": {k: c.to_json() for k, c in contents.items()},
        "parity": [p.to_json() for p in parity],
        "int8_min_mask_iou": min_iou,
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
