"""`oace eval`: Evaluate checkpoints or .tflite bundles with the NoC/mIoU protocol (a mirror of model.evaluate.run_eval)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from oace.commands.options import UNSET, default_of, defaults_help, given

if TYPE_CHECKING:
    from oace.model.evaluate import EvalConfig

# the eval flags' defaults live once, in model.evaluate.EvalConfig and run_eval: a flag left out is
# absent from the parsed arguments and the config keeps its own default (importing the config here
# would load PyTorch on every `oace` command)


def _defaults() -> dict[str, Any]:
    from oace.model.evaluate import EvalConfig, run_eval

    return {**{f.name: default_of(EvalConfig, f.name) for f in dataclasses.fields(EvalConfig)},
            "out": default_of(run_eval, "out")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="Evaluate a checkpoint or .tflite with the NoC/mIoU protocol",
        description="Evaluate PyTorch checkpoints and/or .tflite bundles with the RITM NoC/mIoU protocol "
        "(each model's own mask threshold and input size: 0.49 and 512x512 for the shipped model; IoU at the "
        "original resolution). See docs/evaluation.md.",
        formatter_class=defaults_help(_defaults),
    )
    p.add_argument("--checkpoint", action="append", required=True, metavar="PATH",
                   help="checkpoint (.pt/.pth), `reference` (the shipped model) or .tflite; repeat to compare backends on one plot")
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help="GrabCut, Berkeley, DAVIS, SBD, COCO_MVal, COCO, LVIS, yolo_seg, salient, ECSSD, DUTS")
    p.add_argument("--data-root", required=True, metavar="DIR", help="the dataset folder or its parent")
    p.add_argument("--max-clicks", type=int, default=UNSET, help="clicks per object")
    p.add_argument("--out", default=UNSET, metavar="DIR", help="report folder")
    p.add_argument("--limit", type=int, default=UNSET, metavar="N", help="only the first N samples")
    p.add_argument("--robustness-trials", type=int, default=UNSET, metavar="N",
                   help="random first clicks per object for the robustness test (0 = skip)")
    p.add_argument("--seed", type=int, default=UNSET, help="seed of the robustness clicks")
    p.add_argument("--threads", type=int, default=UNSET, metavar="N",
                   help="CPU threads for inference, 1..4 x this machine's CPUs (default: the runtime's own choice)")
    p.add_argument("--distance", choices=("scipy", "opencv"), default=UNSET,
                   help="robot distance transform: scipy (exact, deterministic) or opencv (RITM's own "
                        "float32 path: differs on exact ties, and not deterministic run to run)")
    p.add_argument("--containment-trials", type=int, default=UNSET, metavar="N",
                   help="first clicks per image drawn uniformly over the whole image; reports the share whose mask "
                        "contains the clicked pixel (0 skips)")
    p.add_argument("--zoom-in", action="store_true", default=UNSET,
                   help="follow-up clicks run on a crop around the current mask (RITM's ZoomIn: 1.4x the box, >= 200 px)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from oace.model.evaluate import run_eval

    paths = run_eval(model=args.checkpoint, dataset=args.dataset, data_root=args.data_root, cfg=eval_config(args),
                     argv=sys.argv, **given(args, out="out"))
    for path in paths[:3]:
        print(path)
    if len(paths) > 3:
        print(f"{len(paths) - 3} overlay PNGs in {paths[0].parent}")
    return 0


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig the flags describe: the flags given, the config's defaults for the rest."""
    from oace.model.evaluate import EvalConfig
    from oace.model.zoom_in import ZoomIn

    options = given(args, **{f.name: f.name for f in dataclasses.fields(EvalConfig)})
    if options.pop("zoom_in", False):
        options["zoom_in"] = ZoomIn()
    if args.no_progress:
        options["progress"] = False
    return EvalConfig(**options)
