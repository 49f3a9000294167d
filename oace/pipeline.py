"""The whole export, composed above the stages it runs: export (Segmenter -> ONNX -> SavedModel ->
fp32/fp16 TFLite, `export.float_bundle`) -> quantize (int8, int16x8, dynamic_range from that
SavedModel, calibrated on a streamed calibration set, `quantize.calibration`) -> verify (parity of
every form against PyTorch and fp32, Flex ops, the int8 gate) -> report. A surface module, like the
CLI and the demo it serves: the stages below never import it, nor each other sideways.

Writes into out_dir:
  oace_segmenter.onnx, saved_model/, oace_segmenter_{fp32,fp16,int8}.tflite (+ int16x8,
  dynamic_range when asked), a metadata JSON beside each .tflite, calibration_manifest.json (when a
  calibration set was used), export_report.json / .md, onnx2tf.log.
The whole folder is built in a hidden sibling (`.<name>.partial-<pid>`) and published by one
rename, the report written last: out_dir is the previous export or the new one, never a mix, and
the sizes and hashes in the report are those of the files beside it. Leftovers of killed runs are
removed by the next run. Verification runs after every export: a Flex op fails the export (nothing
is published); int8 mask IoU vs fp32 below `min_int8_iou` publishes the folder with the int8 file
renamed `oace_segmenter_int8.REFUSED.tflite` and a "failed" report, then fails.

A calibration set is needed by int8 and int16x8 only: an fp32/fp16 (or dynamic-range) export runs
without one. Parity runs on the calibration set's held-out samples when there is a set, else on
export's seeded synthetic samples (`export.parity_samples`); the report says which.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tqdm import tqdm

from oace.artifacts import Artifact, publish_dir, staged_dir
from oace.errors import InputError, ToolkitError
from oace.export.float_bundle import ONNX_NAME, SAVED_MODEL, FloatBundle, export_float_bundle, run_tflite
from oace.export.metadata import bundle_metadata, write_metadata
from oace.export.onnx_export import check_opset
from oace.export.parity_samples import SEED, Sample, synthetic_samples
from oace.export.tflite_convert import FLOAT_PRECISIONS
from oace.export.verify import Parity, compare
from oace.model.segmenter import Segmenter
from oace.quantize.calibration import quantize_calibrated
from oace.quantize.int8 import CALIBRATED_MODES, MODES
from oace.reports import markdown_table, provenance, write_report
from oace.tflite import bundle_name, refused_name
from oace.tflite.inspection import inspect_bundle_file

if TYPE_CHECKING:
    from oace.calibration_data import CalibrationSet

PRECISIONS = ("fp32", "fp16", "int8")
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

    @property
    def quantized(self) -> tuple[str, ...]:
        """The requested files quantize makes (int8, int16x8, dynamic_range), in request order."""
        return tuple(m for m in (*self.precisions, *self.extra_modes) if m in MODES)


@dataclasses.dataclass
class _Verified:
    """The bundle's files (paths under the published folder), the ops in each .tflite, the parity
    rows, and whether int8 passed its gate."""

    artifacts: dict[str, Artifact]
    contents: dict[str, Any]
    parity: list[Parity]
    ok: bool


def needs_calibration(opts: ExportOptions) -> bool:
    """Whether the request makes a calibrated file (int8, int16x8): only then is a calibration set needed."""
    return any(m in CALIBRATED_MODES for m in opts.quantized)


def export_bundle(
    model: Segmenter,
    out_dir: str | os.PathLike,
    *,
    calibration: CalibrationSet | None = None,
    opts: ExportOptions = ExportOptions(),
) -> ExportResult:
    """Run every step; see the module docstring for what lands in out_dir and how it is published."""
    check_request(model, opts, calibration)
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


def check_request(model: Segmenter, opts: ExportOptions, calibration: CalibrationSet | None = None) -> None:
    check_options(opts)
    unknown = [p for p in opts.precisions if p not in PRECISIONS] + [m for m in opts.extra_modes if m not in MODES or m == "int8"]
    if unknown:
        raise ToolkitError(f"unknown precision/variant {', '.join(unknown)}; precisions: {', '.join(PRECISIONS)}; "
                           f"extra variants: int16x8, dynamic_range")
    if not isinstance(model, Segmenter):
        raise ToolkitError(f"export needs a Segmenter (the chained bundle), got {type(model).__name__}")
    if calibration is None and needs_calibration(opts):
        calibrated = [m for m in opts.quantized if m in CALIBRATED_MODES]
        raise ToolkitError(f"{', '.join(calibrated)} needs a calibration set (--calib); fp32, fp16 and "
                           "dynamic_range do not")


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
    return (name in (ONNX_NAME, SAVED_MODEL, "onnx2tf.log", "calibration_manifest.json", "export_report.json",
                     "export_report.md", *also)
            or (name.startswith("oace_segmenter_") and name.endswith((".tflite", ".json")))
            or (name.startswith(".") and name.endswith(".tmp")) or name.startswith(".onnx2tf-"))


def build_bundle(model: Segmenter, work: Path, out: Path, *, calibration: CalibrationSet | None,
                 opts: ExportOptions) -> ExportResult:
    """Every step into the private folder `work`, which will be published as `out` (the paths the
    report records). Misses of the int8 gate rename the int8 file; nothing here raises for them."""
    samples, parity_from = _parity_samples(model, calibration, opts.verify_samples)
    calib_info = calibration.summary() if calibration is not None else None
    if calibration is not None:
        calibration.save_manifest(work)
    t_start = time.perf_counter()
    bundle = export_float_bundle(model, work, samples, opset=opts.opset,
                                 precisions=[p for p in opts.precisions if p in FLOAT_PRECISIONS])
    _quantize(work, bundle, samples, calibration, opts)
    artifacts, contents = _in_request_order(bundle, opts)
    for step in contents:
        write_metadata(artifacts[step].path.with_suffix(".json"), bundle_metadata(
            model, artifacts[step], step, model_version=opts.model_version, calibration=calib_info))
    parity = _parity(bundle.outputs, opts, model.cfg.mask_threshold)
    int8 = next((p for p in parity if p.candidate == "int8" and p.reference == "fp32"), None)
    ok = int8 is None or int8.mask_iou >= opts.min_int8_iou
    if not ok:
        artifacts["int8"] = _refuse(work, artifacts["int8"], int8, opts.min_int8_iou)
    artifacts = {k: dataclasses.replace(a, path=out / a.path.relative_to(work)) for k, a in artifacts.items()}
    verified = _Verified(artifacts, contents, parity, ok)
    report = _report(model, out, verified, {"calibration": calib_info, "parity_samples": parity_from}, opts,
                     time.perf_counter() - t_start)
    write_report(work, "export_report", report, _markdown(report))  # last: a folder with a report is complete
    return ExportResult(out, artifacts, parity, report, ok)


def _parity_samples(model: Segmenter, calibration: CalibrationSet | None, limit: int) -> tuple[list[Sample], dict]:
    """The samples every form runs on, and what the report says about them: the calibration set's
    held-out samples when there is a set (rendered from its manifest), else export's synthetic ones."""
    if calibration is None:
        samples = synthetic_samples(model, limit)
        return samples, {"kind": "synthetic", "count": len(samples), "seed": SEED,
                         "note": "seeded synthetic scenes (export.parity_samples): no calibration set was used"}
    held = itertools.islice(calibration.iter_samples(held_out=True), limit)
    samples = [(s.image[None], s.clicks[None], s.prev_mask[None]) for s in held]
    if not samples:
        raise ToolkitError("calibration set has no held-out samples to verify the export on")
    return samples, {"kind": "held_out_calibration", "count": len(samples), "seed": calibration.manifest.seed}


def _quantize(work: Path, bundle: FloatBundle, samples: Sequence[Sample], calibration: CalibrationSet | None,
              opts: ExportOptions) -> None:
    """Quantize's files from export's SavedModel, each checked and run on the samples, added to `bundle`."""
    bar = tqdm(opts.quantized, desc="quantize", unit="file", disable=not opts.quantized)
    for mode in bar:
        bar.set_postfix_str(mode)
        path = work / bundle_name(mode)
        bundle.artifacts[mode] = quantize_calibrated(work / SAVED_MODEL, path, mode=mode, calibration=calibration)
        bundle.contents[mode] = inspect_bundle_file(path)
        bundle.outputs[mode] = run_tflite(path, samples)


def _in_request_order(bundle: FloatBundle, opts: ExportOptions) -> tuple[dict[str, Artifact], dict[str, Any]]:
    """The artifacts (onnx, saved_model, then each file) and contents in the order the request named them."""
    order = ["onnx", SAVED_MODEL, *opts.precisions, *opts.extra_modes]
    return {k: bundle.artifacts[k] for k in order}, {k: bundle.contents[k] for k in order if k in bundle.contents}


def _parity(outputs: dict, opts: ExportOptions, threshold: float) -> list[Parity]:
    """Each form against fp32 (and torch), masks at the model's threshold."""
    parity = [compare("torch", outputs["torch"], "onnx", outputs["onnx"], threshold)]
    for step in (*opts.precisions, *opts.extra_modes):
        ref = "fp32" if step != "fp32" and "fp32" in outputs else "torch"
        parity.append(compare(ref, outputs[ref], step, outputs[step], threshold))
        if ref != "torch":
            parity.append(compare("torch", outputs["torch"], step, outputs[step], threshold))
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


def _report(model, out: Path, verified: _Verified, inputs: dict, opts: ExportOptions, seconds: float) -> dict:
    """`inputs`: the calibration set's summary (None without one) and what the parity samples were."""
    params = sum(p.numel() for p in model.parameters())
    weights = opts.weights
    artifacts, contents, parity, ok = verified.artifacts, verified.contents, verified.parity, verified.ok
    return {
        "status": "ok" if ok else "failed",
        "model": {"version": opts.model_version, "weights": weights, "params": params, "config": dataclasses.asdict(model.cfg)},
        "calibration": inputs["calibration"],
        "artifacts": {k: {**a.to_json(), "bytes_per_param": round(a.bytes / params, 3)} for k, a in artifacts.items()},
        "refused": None if ok else {
            "int8": {"file": refused_name("int8"), "reason": f"int8 mask IoU vs fp32 below {opts.min_int8_iou}: not for shipping"}},
        "ops": {k: c.to_json() for k, c in contents.items()},
        "parity_samples": inputs["parity_samples"],
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
    samples = r["parity_samples"]
    lines.append("\n## Parity on " + ("held-out calibration-style samples" if samples["kind"] == "held_out_calibration"
                                       else f"{samples['count']} seeded synthetic samples (no calibration set)") + "\n")
    lines.append(markdown_table(
        ["reference", "candidate", "samples", "max abs", "mean abs", "mask IoU (mean)", "mask IoU (min)"],
        [(p["reference"], p["candidate"], p["samples"], f"{p['max_abs']:.2e}", f"{p['mean_abs']:.2e}", f"{p['mask_iou']:.4f}", f"{p['min_mask_iou']:.4f}") for p in r["parity"]],
    ))
    if r.get("untrained_note"):
        lines.append(f"\nNote: {r['untrained_note']}.\n")
    threshold = r["parity"][0]["threshold"]  # one per model: every row has it
    lines.append(f"\nMasks at probability > {threshold} (the model's threshold). "
                 f"int8 passes when its mask IoU vs fp32 >= {r['int8_min_mask_iou']}.\n\n## Ops that compute in float\n")
    lines.append(markdown_table(
        ["file", "ops", "float ops", "Flex ops"],
        [(k, sum(c["op_counts"].values()), ", ".join(f"{o} x{n}" for o, n in c["float_ops"].items()) or "none", ", ".join(c["flex_ops"]) or "none")
         for k, c in r["ops"].items()],
    ))
    return "\n".join(lines)
