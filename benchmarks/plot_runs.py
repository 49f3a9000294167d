"""Compare training runs on one figure: per-step training loss (moving average) and the validation
metric per epoch, from each run's `last.pt` history, or from its `train.json` when only the reports
came back (a run on a remote GPU): that has no per-step losses, so the left panel then shows the
per-epoch training loss of every run. Prints the per-epoch table too.

    python benchmarks/plot_runs.py runs/ref/msfnet runs/ref/disk --labels OACE,disk --out curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oace.artifacts import atomic_path  # noqa: E402
from oace.errors import InputError  # noqa: E402


def load_history(run: Path) -> list[dict]:
    path = run / "last.pt"
    if path.is_file():
        return list(torch.load(path, map_location="cpu", weights_only=True)["history"])
    summary = run / "train.json"
    if summary.is_file():
        return list(json.loads(summary.read_text())["epochs"])
    raise InputError(f"{run}: neither last.pt nor train.json (a run directory of `oace train`?)")


def moving_average(x: np.ndarray, k: int) -> np.ndarray:
    k = max(1, min(k, len(x)))
    return np.convolve(x, np.ones(k) / k, mode="valid")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--labels", default=None, help="comma list, one per run (default: folder names)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--window", type=int, default=8, help="moving-average window in steps (default 8)")
    args = ap.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit("--labels: give one label per run")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = [load_history(r) for r in args.runs]
    metric = next((k for k in ("val_miou1", "val_auc") if k in histories[0][0]), None)
    per_step = all("step_losses" in r for h in histories for r in h)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, hist in zip(labels, histories):
        if per_step:
            steps = np.concatenate([np.asarray(r["step_losses"], float) for r in hist])
            sm = moving_average(steps, args.window)
            ax_loss.plot(np.arange(len(sm)) + len(steps) - len(sm) + 1, sm, label=label)
        else:
            ax_loss.plot([r["epoch"] for r in hist], [r["train_loss"] for r in hist], marker="o", label=label)
        ax_val.plot([r["epoch"] for r in hist], [r.get(metric, float("nan")) for r in hist], marker="o", label=label)
        print(f"{label}: " + "; ".join(
            f"epoch {r['epoch']} train {r['train_loss']:.4f} val_loss {r.get('val_loss', float('nan')):.4f} {metric} {r.get(metric, float('nan')):.4f}"
            for r in hist))
    if per_step:
        ax_loss.set(title=f"training loss ({args.window}-step moving average)", xlabel="step")
    else:
        ax_loss.set(title="training loss (epoch mean)", xlabel="epoch")
    ax_val.set(title=f"validation {metric}", xlabel="epoch")
    for ax in (ax_loss, ax_val):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as exc:
        print(f"plot_runs: error: {exc}", file=sys.stderr)
        sys.exit(2)
