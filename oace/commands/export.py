"""`oace export`: checkpoint -> ONNX -> SavedModel -> TFLite fp32/fp16/int8 bundle, verified."""

from __future__ import annotations

import argparse
import dataclasses


def add_calibration_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib", default="embedded",
                   help="calibration source: a YOLO-seg folder (coco128-seg), a COCO root (val2017 + annotations), "
                        "a folder of images with masks, or 'embedded' (scikit-image photos: NOT COCO; default)")
    p.add_argument("--calib-count", type=int, default=200, help="calibration samples (default 200)")
    p.add_argument("--calib-seed", type=int, default=0, help="seed of the calibration selection (default 0)")
    p.add_argument("--force-calib", action="store_true", help="accept fewer than 100 calibration images")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX and TFLite (fp32, fp16, int8)", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="segmenter checkpoint (.pt) to export; `reference` for the shipped reference model")
    src.add_argument("--model", help="a registered preset with seeded, UNTRAINED weights (e.g. segmenter_tiny)")
    p.add_argument("--out", default="runs/export", help="output folder (default runs/export)")
    add_calibration_arguments(p)
    p.add_argument("--precision", default="fp32,fp16,int8", help="comma list of fp32, fp16, int8 (default all)")
    p.add_argument("--extra", default="", help="also produce: int16x8 (int16 activations), dynamic_range")
    p.add_argument("--min-int8-iou", type=float, default=0.90, help="fail when int8 mask IoU vs fp32 is lower; in [0, 1] (0.90)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 11..20 (default 17)")
    p.set_defaults(handler=run)


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    from oace.calibration_data import build_calibration_set
    from oace.export.pipeline import ExportOptions, check_options, export_bundle
    from oace.model.registry import load_segmenter
    from oace.artifacts import check_output_dir

    opts = ExportOptions(precisions=split_list(args.precision), extra_modes=split_list(args.extra),
                         min_int8_iou=args.min_int8_iou, opset=args.opset)
    check_options(opts)
    check_output_dir(args.out, "--out")
    model, weights, version = load_segmenter(args.checkpoint, args.model)
    calibration = build_calibration_set(args.calib, count=args.calib_count, seed=args.calib_seed, force=args.force_calib)
    opts = dataclasses.replace(opts, model_version=version, weights=weights)
    result = export_bundle(model, args.out, calibration=calibration, opts=opts)
    print((result.out_dir / "export_report.md").read_text())
    return 0
