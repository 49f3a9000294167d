"""`oace demo`: the main job on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on embedded defaults", description=__doc__)
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--checkpoint", default=None, help="segmenter checkpoint (default: seeded untrained weights)")
    p.add_argument("--model", default="segmenter", help="preset to build when no checkpoint is given (default segmenter)")
    p.add_argument("--no-export", action="store_true", help="only segment the sample photo; skip export and int8")
    p.add_argument("--calib", default="embedded", help="calibration source for int8 (default: embedded photos, NOT COCO)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.demo import run_demo

    report = run_demo(args.out, checkpoint=args.checkpoint, model_name=args.model, export=not args.no_export, calib=args.calib)
    print(report["markdown"])
    print(f"wrote {args.out}/demo.json, {args.out}/demo.md, {report['outputs']['overlay']}")
    return 0
