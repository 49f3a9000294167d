"""`oace demo`: the main job on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on embedded defaults", description=__doc__)
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", default=None,
                         help="segmenter checkpoint, or `reference` (default: the reference model when installed, see docs/model_card.md; else seeded weights)")
    weights.add_argument("--untrained", action="store_true", help="seeded random weights of --model instead of a checkpoint")
    p.add_argument("--model", default="segmenter", help="preset to build with --untrained, or when no reference model is installed (default segmenter)")
    p.add_argument("--no-export", action="store_true", help="only segment the sample photo; skip export and int8")
    p.add_argument("--calib", default="embedded", help="calibration source for int8 (default: embedded photos, NOT COCO)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.model.reference import reference_checkpoint
    from oace.artifacts import check_output_dir
    from oace.demo import run_demo
    from oace.errors import InputError

    if args.checkpoint is not None and not args.checkpoint.strip():
        raise InputError("--checkpoint is empty: give a segmenter checkpoint (.pt) or `reference`, or leave it out")
    check_output_dir(args.out, "--out")
    checkpoint = None if args.untrained else (args.checkpoint or reference_checkpoint())
    report = run_demo(args.out, checkpoint=checkpoint, model_name=args.model, export=not args.no_export, calib=args.calib)
    print(report["markdown"])
    print(f"wrote {args.out}/demo.json, {args.out}/demo.md, {report['outputs']['overlay']}")
    return 0
