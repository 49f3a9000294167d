"""`oace train prior|msfnet`: train the OACE prior (stage 1) or MSFNet with the prior frozen (stage 2).

Single process: `oace train prior --data salient:../shared/data-train/ECSSD --out runs/prior`.
Several GPUs or nodes: `torchrun --nproc_per_node=8 -m oace.cli train ...` (same arguments; --batch
is the global batch). See docs/training.md.

The options are TrainConfig's fields (model/train_config.py): names, types, defaults and help live there.
"""

from __future__ import annotations

import argparse
import dataclasses

from oace.commands.options import add_config_options
from oace.model.train_config import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the OACE prior or MSFNet (DDP via torchrun)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(p, TrainConfig)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.model.train import run_training
    from oace.artifacts import check_output_dir

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    cfg.check()
    check_output_dir(args.out, "--out")
    summary = run_training(cfg)
    best = summary.get("best") or {}
    if best:
        print(f"best {best.get('metric')} {best.get('value'):.4f} at epoch {best.get('epoch')}; run in {args.out}")
    return 0
