"""Click-target accuracy, containment and interior spread of checkpoints or bundles on held-out multi-object samples.

The samples are the training validation's: copy-paste composites of the objects the training
split holds out (same seed and split as `oace train`), so every model is scored on images no
training run saw. Writes click_metrics.json and click_metrics.md.

    python benchmarks/click_metrics.py --model reference runs/demo/oace_segmenter_int8.tflite \\
        --data salient:../shared/data-train/ECSSD,salient:../shared/data-train/DUTS-TR-subset,... --out runs/click_metrics
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from oace.model.backends import open_backend
from oace.model.click_metrics import multi_object_metrics
from oace.model.evaluate import Session
from oace.model.train_data import TrainSet, TrainSetConfig, open_datasets, parse_specs, split_indices
from oace.model.train_clicks import ClickSimConfig
from oace.reports import markdown_table, provenance, write_report


def heldout_samples(data: str, n: int, seed: int, size: int, val_fraction: float, val_max: int):
    datasets = open_datasets(parse_specs(data))
    _, val_idx = split_indices(sum(len(d) for d in datasets), val_fraction, seed)
    val = TrainSet(datasets, val_idx[:val_max],
                   TrainSetConfig(size=size, clicks=ClickSimConfig(), seed=seed, train=False, multi_click=False))
    return val.heldout_composites(n)


def score(model: str, samples, threads: int | None, trials: int) -> dict:
    backend = open_backend(model, num_threads=threads)

    def predict_for(image: np.ndarray):
        return Session(backend, image).first_click

    metrics = multi_object_metrics(predict_for, samples, trials, thr=backend.contract.threshold)  # the model's threshold
    return {"model": model, "backend": backend.name, **metrics}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", required=True, help="checkpoints (or `reference`) and/or bundle .tflite files")
    p.add_argument("--data", required=True, help="the training --data spec whose held-out split gives the objects")
    p.add_argument("--n", type=int, default=40, help="composites (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--val-max", type=int, default=64, help="held-out objects used, as `oace train --val-max` (default 64)")
    p.add_argument("--containment-trials", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/click_metrics")
    args = p.parse_args(argv)
    samples = heldout_samples(args.data, args.n, args.seed, 512, args.val_fraction, args.val_max)
    rows = [score(m, samples, args.threads, args.containment_trials) for m in args.model]
    table = markdown_table(["model", "click-target accuracy", "clicks", "containment", "clicks", "interior spread (IoU std)"],
                           [[r["backend"], f"{r['click_target_accuracy']:.3f}", r["click_target_clicks"],
                             f"{r['containment']:.3f}", r["containment_clicks"], f"{r['interior_spread']:.3f}"] for r in rows])
    md = (f"# Click metrics on {len(samples)} held-out multi-object composites\n\n{table}\n\n"
          f"Objects per composite: {np.mean([len(s.objects) for s in samples]):.2f}. Data: `{args.data}`.\n")
    write_report(Path(args.out), "click_metrics", {"samples": len(samples), "runs": rows, **provenance(sys.argv)}, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
