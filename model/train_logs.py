"""A training run's reports, rewritten from its whole history after every epoch: train.json,
metrics.csv, train.md, TensorBoard events (tb/) and curves.png."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from oace.model.train_config import TrainConfig
from oace.artifacts import atomic_path, write_json_atomic, write_text_atomic
from oace.reports import agg_figure, markdown_table, provenance


def json_summary(cfg: TrainConfig, history: list[dict[str, Any]], best: dict[str, Any] | None,
                 init_report: Any, seconds: float) -> dict[str, Any]:
    return {
        "config": dataclasses.asdict(cfg),
        "click_radius": cfg.click_radius,
        "provenance": provenance(),
        "epochs": [{k: v for k, v in r.items() if k != "step_losses"} for r in history],
        "best": best,
        "init": init_report,
        "seconds_this_session": round(seconds, 1),
    }


def write_logs(out: Path, cfg: TrainConfig, history: list[dict[str, Any]], best: dict[str, Any] | None,
               init_report: Any, seconds: float) -> None:
    summary = json_summary(cfg, history, best, init_report, seconds)
    write_json_atomic(out / "train.json", summary)
    metric = ["val_auc", "val_auc_distance"] if cfg.stage == "prior" else ["val_miou1", "val_miou_robot", "val_obey_pos", "val_obey_neg", "val_click_target", "val_containment", "val_interior_spread"]
    cols = ["epoch", "train_loss", "val_loss", *metric, "crops_per_s", "seconds"]
    lines = [",".join(cols)] + [",".join(_fmt(r.get(c)) for c in cols) for r in history]
    write_text_atomic(out / "metrics.csv", "\n".join(lines) + "\n")
    write_text_atomic(out / "train.md", _markdown(cfg, summary, cols))
    write_events(out / "tb" / "events.out.tfevents.oace", history, cols[1:-2])
    plot_curves(out / "curves.png", history, cols[1:-2])


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v))


def _markdown(cfg: TrainConfig, summary: dict[str, Any], cols: list[str]) -> str:
    best = summary["best"] or {}
    text = [
        f"# oace train {cfg.stage}: {cfg.out}\n",
        f"- data: `{cfg.data}`; size {cfg.size}{f', random {cfg.crop}x{cfg.crop} crops' if cfg.crop else ''} (click disk radius {cfg.click_radius} px); "
        f"global batch {cfg.batch} (accum {cfg.accum}); Adam lr {cfg.lr}; seed {cfg.seed}",
        f"- model: {cfg.model or ('prior' if cfg.stage == 'prior' else 'segmenter')}; prior: {cfg.prior}; init: {cfg.init}"
        + (f"; contrast: {cfg.contrast}" if cfg.stage == "prior" else ""),
        f"- best: {best.get('metric')} {best.get('value')} at epoch {best.get('epoch')}",
        f"- toolkit {summary['provenance']['versions'].get('oace-toolkit')}, git {summary['provenance']['git_sha']}\n",
        markdown_table(cols, [[_fmt(r.get(c)) for c in cols] for r in summary["epochs"]]),
    ]
    return "\n".join(text)


def write_events(path: Path, history: list[dict[str, Any]], tags: list[str]) -> None:
    """TensorBoard scalars, one file rewritten from the whole history (consistent after a resume).

    Written with tensorboard's protobufs and record writer only: torch.utils.tensorboard would
    import TensorFlow (seconds, and noise) where it is installed.
    """
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    writer = RecordWriter(buf)
    writer.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    for r in history:
        values = [Summary.Value(tag=t, simple_value=float(r[t])) for t in tags if r.get(t) is not None]
        writer.write(Event(wall_time=time.time(), step=int(r["epoch"]), summary=Summary(value=values)).SerializeToString())
        for i, loss in enumerate(r.get("step_losses", [])):
            step = (int(r["epoch"]) - 1) * len(r["step_losses"]) + i
            ev = Event(wall_time=time.time(), step=step, summary=Summary(value=[Summary.Value(tag="step_loss", simple_value=float(loss))]))
            writer.write(ev.SerializeToString())
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def plot_curves(path: Path, history: list[dict[str, Any]], tags: list[str]) -> None:
    """curves.png: one panel per tag over the epochs (agg_figure: no pyplot, no backend switch)."""
    fig = agg_figure((4 * len(tags), 3))
    axes = fig.subplots(1, len(tags))
    epochs = [r["epoch"] for r in history]
    for ax, tag in zip(np.atleast_1d(axes), tags):
        ax.plot(epochs, [r.get(tag, float("nan")) for r in history], marker="o")
        ax.set_title(tag)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
