"""`oace export`: checkpoint -> ONNX -> SavedModel -> TFLite fp32/fp16/int8 bundle, verified.

A mirror of oace.pipeline.export_bundle: the options' defaults live in ExportOptions and
calibration_data.build_calibration_set. The calibration set is built only when a calibrated file
(int8, int16x8) is asked for: `--precision fp32` needs none.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from oace.commands.options import UNSET, default_of, defaults_help, given


def calibration_defaults() -> dict[str, Any]:
    from oace.calibration_data import build_calibration_set

    return {"calib_count": default_of(build_calibration_set, "count"), "calib_seed": default_of(build_calibration_set, "seed")}


def add_calibration_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib", default="embedded",
                   help="calibration source (int8 and int16x8 only): a YOLO-seg folder (coco128-seg), a COCO root "
                        "(val2017 + annotations), a folder of images with masks, or 'embedded' (scikit-image photos: "
                        "NOT COCO; default)")
    p.add_argument("--calib-count", type=int, default=UNSET, help="calibration samples")
    p.add_argument("--calib-seed", type=int, default=UNSET, help="seed of the calibration selection")
    p.add_argument("--force-calib", action="store_true", help="accept fewer than 100 calibration images")


def build_calibration(args: argparse.Namespace) -> Any:
    """The calibration set the --calib* flags describe (the builder's defaults for those left out)."""
    from oace.calibration_data import build_calibration_set

    return build_calibration_set(args.calib, force=args.force_calib, **given(args, count="calib_count", seed="calib_seed"))


def _defaults() -> dict[str, Any]:
    from oace.pipeline import ExportOptions

    return {"precision": default_of(ExportOptions, "precisions"), "extra": default_of(ExportOptions, "extra_modes"),
            "min_int8_iou": default_of(ExportOptions, "min_int8_iou"), "opset": default_of(ExportOptions, "opset"),
            **calibration_defaults()}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX and TFLite (fp32, fp16, int8)", description=__doc__,
                       formatter_class=defaults_help(_defaults))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="CKPT",
                     help="segmenter checkpoint (.pt) to export; `reference` for the shipped reference model")
    src.add_argument("--preset", metavar="NAME", help="a registered preset with seeded, UNTRAINED weights (e.g. segmenter_tiny)")
    p.add_argument("--out", default="runs/export", help="output folder (default %(default)s)")
    add_calibration_arguments(p)
    p.add_argument("--precision", default=UNSET, help="comma list of fp32, fp16, int8")
    p.add_argument("--extra", default=UNSET, help="also produce: int16x8 (int16 activations), dynamic_range")
    p.add_argument("--min-int8-iou", type=float, default=UNSET, help="fail when int8 mask IoU vs fp32 is lower; in [0, 1]")
    p.add_argument("--opset", type=int, default=UNSET, help="ONNX opset, 11..20")
    p.set_defaults(handler=run)


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    from oace.pipeline import ExportOptions, check_options, export_bundle, needs_calibration
    from oace.model.registry import load_segmenter
    from oace.artifacts import check_output_dir

    options = {key: split_list(text) for key, text in given(args, precisions="precision", extra_modes="extra").items()}
    opts = ExportOptions(**options, **given(args, min_int8_iou="min_int8_iou", opset="opset"))
    check_options(opts)
    check_output_dir(args.out, "--out")
    model, weights, version = load_segmenter(args.checkpoint, args.preset)
    calibration = build_calibration(args) if needs_calibration(opts) else None
    opts = dataclasses.replace(opts, model_version=version, weights=weights)
    result = export_bundle(model, args.out, calibration=calibration, opts=opts)
    print((result.out_dir / "export_report.md").read_text())
    return 0
