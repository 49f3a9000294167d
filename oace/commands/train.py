"""`oace train prior|msfnet`: train the OACE prior (stage 1) or MSFNet with the prior frozen (stage 2).

Single process: `oace train prior --data salient:../shared/data-train/ECSSD --out runs/prior`.
Several GPUs or nodes: `torchrun --nproc_per_node=8 -m oace.cli train ...` (same arguments; --batch
is the global batch). See docs/training.md.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the OACE prior or MSFNet (DDP via torchrun)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("prior", "msfnet"), help="prior: contrastive OACE prior; msfnet: MSFNet with the prior frozen")
    p.add_argument("--data", required=True, help="kind:path[,kind:path], e.g. salient:../shared/data-train/ECSSD,yolo_seg:../shared/data/coco128-seg")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, reports)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64, help="global batch over all processes and accumulation steps (default 64)")
    p.add_argument("--accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    p.add_argument("--size", type=int, default=512, help="training side, a multiple of 32 (default 512)")
    p.add_argument("--crop", type=int, default=None, help="train on random CROP x CROP windows of the --size image (same pixel scale, less compute); validation sees whole images")
    p.add_argument("--model", default=None, help="preset (default: prior / segmenter); e.g. segmenter_disk, segmenter_baseline, segmenter_tiny")
    p.add_argument("--prior", default=None, help="prior checkpoint (prior.pt of a prior run) for the msfnet stage")
    p.add_argument("--init", default=None, help="timm ImageNet HRNet checkpoint (.pth/.safetensors) for the backbone")
    p.add_argument("--weights", default=None, help="start from trained weights (fine-tune): prior.pt for the prior stage, segmenter.pt for msfnet")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="learning rate: constant (default) or cosine decay to 0 over the run (or over --max-minutes, whichever ends first)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget for the training steps; when spent, the epoch ends early, is validated and saved, and the run stops")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    p.add_argument("--val-fraction", type=float, default=0.05, help="held-out share of the objects (default 0.05)")
    p.add_argument("--val-max", type=int, default=2000, help="score at most this many held-out objects per epoch (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process (default 0)")
    p.add_argument("--amp", action="store_true", help="mixed precision: fp16 autocast + gradient scaler on CUDA, bf16 autocast on the CPU")
    p.add_argument("--click-weight", type=float, default=1.0,
                   help="msfnet stage: weight of the cross-entropy on the clicked disks, so every tap counts (default 1.0; 0 = NFL only)")
    p.add_argument("--anchor", default=None,
                   help="msfnet stage: a click-disk segmenter (checkpoint or name, e.g. reference_v1) whose first-click masks the fine-tune keeps (learning without forgetting)")
    p.add_argument("--anchor-weight", type=float, default=10.0,
                   help="msfnet stage: weight of the KL to --anchor's first-click probabilities (default 10)")
    p.add_argument("--val-robot-clicks", type=int, default=2,
                   help="msfnet stage: robot follow-up clicks per held-out object, scored for obedience (default 2)")
    p.add_argument("--limit", type=int, default=None, help="use only this many objects (smoke runs)")
    p.add_argument("--patches", type=int, default=64, help="prior stage: patches of each kind per image (default 64)")
    p.add_argument("--contrast", choices=("within", "paper"), default="within",
                   help="prior stage: background patches from both passes (default) or pass 2 only as Eq. 1 is written; see docs/training.md")
    p.add_argument("--val-composites", type=int, default=12,
                   help="msfnet stage: held-out multi-object composites scored each epoch for click-target accuracy and containment (default 12)")
    p.add_argument("--composite", type=float, default=0.5,
                   help="share of training items made copy-paste composites: 1-3 salient objects pasted on another image, the click picks one (default 0.5)")
    p.add_argument("--hard-negatives", type=float, default=0.5,
                   help="prior stage: share of background patches drawn from other objects and a band around the object (default 0.5)")
    p.add_argument("--freeze-bn", action="store_true",
                   help="BatchNorm in eval mode: keep the start weights' statistics when fine-tuning with small batches of crops")
    p.add_argument("--train", choices=("all", "refiner"), default="all",
                   help="msfnet stage: train all weights (default) or the click refiner only, the rest frozen and run once per sample (model/refiner.py)")
    p.add_argument("--max-iterative", type=int, default=3,
                   help="msfnet stage: at most this many simulated iterative clicks per training sample (default 3, RITM's)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from oace.model.train import run_training
    from oace.model.train_config import TrainConfig
    from oace.artifacts import check_output_dir

    cfg = TrainConfig(
        stage=args.stage, data=args.data, out=args.out, epochs=args.epochs, batch=args.batch, accum=args.accum,
        lr=args.lr, size=args.size, crop=args.crop, model=args.model, prior=args.prior, init=args.init, weights=args.weights,
        schedule=args.schedule, max_minutes=args.max_minutes, resume=args.resume,
        val_fraction=args.val_fraction, val_max=args.val_max, seed=args.seed, workers=args.workers, amp=args.amp, limit=args.limit,
        click_weight=args.click_weight, anchor=args.anchor, anchor_weight=args.anchor_weight, val_robot_clicks=args.val_robot_clicks, composite=args.composite, val_composites=args.val_composites,
        hard_negatives=args.hard_negatives, freeze_bn=args.freeze_bn, train=args.train, max_iterative=args.max_iterative,
        patches=args.patches, contrast=args.contrast, progress=not args.no_progress,
    )
    cfg.check()
    check_output_dir(args.out, "--out")
    summary = run_training(cfg)
    best = summary.get("best") or {}
    if best:
        print(f"best {best.get('metric')} {best.get('value'):.4f} at epoch {best.get('epoch')}; run in {args.out}")
    return 0
