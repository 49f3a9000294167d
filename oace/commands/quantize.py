"""`oace quantize`: a float SavedModel (from `oace export`) -> an int8 / int16x8 / dynamic-range TFLite."""

from __future__ import annotations

import argparse
from typing import Any

from oace.commands.export import add_calibration_arguments, build_calibration, calibration_defaults
from oace.commands.options import UNSET, default_of, defaults_help


def _defaults() -> dict[str, Any]:
    from oace.quantize.int8 import quantize

    return {"mode": default_of(quantize, "mode"), **calibration_defaults()}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="quantize an exported SavedModel to TFLite int8", description=__doc__,
                       formatter_class=defaults_help(_defaults))
    p.add_argument("--saved-model", required=True, help="the saved_model/ folder `oace export` wrote")
    p.add_argument("--out", required=True, help="output .tflite path")
    p.add_argument("--mode", default=UNSET, choices=("int8", "int16x8", "dynamic_range"),
                   help="int8 (full integer), int16x8 (int16 activations) or dynamic_range (int8 weights, float activations)")
    add_calibration_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from oace.artifacts import check_output_file
    from oace.errors import InputError
    from oace.evaluation_sets import refuse_evaluation_set
    from oace.quantize.calibration import quantize_calibrated
    from oace.quantize.int8 import CALIBRATED_MODES, check_saved_model, quantize
    from oace.tflite.inspection import inspect_bundle_file

    mode = getattr(args, "mode", default_of(quantize, "mode"))
    check_output_file(args.out, "--out")
    if mode in CALIBRATED_MODES and args.calib != "embedded":
        refuse_evaluation_set(args.calib, None, "calibrating")  # before the SavedModel is read
    if not (Path(args.saved_model) / "saved_model.pb").is_file():
        raise InputError(f"{args.saved_model}: not a SavedModel folder (no saved_model.pb); run `oace export` first")
    check_saved_model(args.saved_model)  # a corrupt one is refused before calibration starts
    calibration = build_calibration(args) if mode in CALIBRATED_MODES else None
    art = quantize_calibrated(args.saved_model, args.out, mode=mode, calibration=calibration)
    contents = inspect_bundle_file(art.path)
    if calibration is not None:  # written after the model: a failed run leaves no manifest of it
        calibration.save_manifest(Path(args.out).parent)
    print(f"wrote {art.path} ({art.bytes / 1e6:.2f} MB, {art.seconds:.0f} s); ops computing in float: "
          f"{', '.join(contents.float_ops) or 'none'}")
    return 0
