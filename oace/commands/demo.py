"""`oace demo`: the main job on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import argparse
from typing import Any

from oace.commands.options import UNSET, default_of, defaults_help, given


def _defaults() -> dict[str, Any]:
    from oace.demo import _demo

    return {"calib": default_of(_demo, "calib")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on embedded defaults", description=__doc__,
                       formatter_class=defaults_help(_defaults))
    p.add_argument("--out", default="runs/demo", help="output folder (default %(default)s)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", default=None, metavar="CKPT",
                         help="segmenter checkpoint, or `reference` (default: the reference model when installed, "
                              "see docs/model_card.md; else seeded weights of the shipped architecture)")
    weights.add_argument("--preset", default=UNSET, metavar="NAME",
                         help="seeded, UNTRAINED weights of this registered preset (`oace models`), e.g. segmenter_tiny")
    weights.add_argument("--untrained", action="store_true",
                         help="seeded, UNTRAINED weights of the shipped architecture even when the reference model is installed")
    p.add_argument("--no-export", action="store_true", help="only segment the sample photo; skip export and int8")
    p.add_argument("--calib", default=UNSET, help="calibration source for int8 (embedded: scikit-image photos, NOT COCO)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.model.reference import reference_checkpoint
    from oace.artifacts import check_output_dir
    from oace.demo import run_demo
    from oace.errors import InputError

    if args.checkpoint is not None and not args.checkpoint.strip():
        raise InputError("--checkpoint is empty: give a segmenter checkpoint (.pt) or `reference`, or leave it out")
    check_output_dir(args.out, "--out")
    seeded = args.untrained or "preset" in vars(args)
    checkpoint = None if seeded else (args.checkpoint or reference_checkpoint())
    report = run_demo(args.out, checkpoint=checkpoint, export=not args.no_export,
                      **given(args, model_name="preset", calib="calib"))
    print(report["markdown"])
    print(f"wrote {args.out}/demo.json, {args.out}/demo.md, {report['outputs']['overlay']}")
    return 0
