"""Writing an evaluation: eval.json, eval.md, miou_vs_clicks.png and overlays of the worst samples."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from oace.artifacts import atomic_path
from oace.reports import agg_figure, markdown_table, provenance, tool_versions, write_report
from oace.model.evaluate import EvalRun, Worst

PROTOCOL_NOTE = (
    "RITM protocol: robot clicks at the centre (L2 distance-transform arg-max, 1 px zero padding) of the "
    "larger error region, positive if the false-negative region wins; {max_clicks} clicks always run; "
    "mask = probability > {thr}; IoU excludes ignore-label pixels; NoC@t = first click with IoU >= t "
    "({max_clicks} if never); fail@90 = % of samples never reaching 90%. The image is resized to {size}x{size} "
    "for the network, clicks are mapped to the {size} grid, the {size}x{size} probabilities are resized back "
    "(bilinear) and IoU is computed at the dataset's original resolution."
)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]


def run_json(run: EvalRun, model: dict[str, Any], robustness: dict[str, Any] | None,
             containment: dict[str, Any] | None = None) -> dict[str, Any]:
    n_clicks = sum(len(r.clicks) for r in run.results)
    return {
        "backend": run.backend,
        "model": model,
        "metrics": run.metrics,
        "seconds": round(run.seconds, 3),
        "seconds_per_sample": round(run.seconds / max(1, len(run.results)), 4),
        "seconds_per_click": round(run.seconds / max(1, n_clicks), 5),
        "worst": [w.result.name for w in run.worst],
        "robustness": robustness,
        "containment": containment,
        "per_sample": [r.to_json(run.max_clicks) for r in run.results],
    }


def markdown(runs: Sequence[EvalRun], dataset: dict[str, Any], robustness: Sequence[dict[str, Any] | None],
             containment: Sequence[dict[str, Any] | None] = ()) -> str:
    mc = runs[0].max_clicks
    ks = [k for k in (1, 2, 3, 5, 10, mc) if k <= mc]
    ks = sorted(set(ks))
    header = ["backend", "n", "NoC@85", "NoC@90", "fail@90 %", *[f"mIoU@{k} %" for k in ks], "s/sample"]
    rows = []
    for r in runs:
        m = r.metrics
        rows.append([r.backend, m["n"], f"{m['noc@85']:.2f}", f"{m['noc@90']:.2f}", f"{m['fail@90']:.1f}",
                     *[f"{m[f'miou@{k}']:.2f}" for k in ks], f"{r.seconds / max(1, len(r.results)):.2f}"])
    text = f"# Evaluation on {dataset['name']} ({dataset['n_evaluated']} of {dataset['n_samples']} samples)\n\n"
    text += markdown_table(header, rows) + "\n"
    text += PROTOCOL_NOTE.format(max_clicks=mc, thr=runs[0].pred_thr, size=runs[0].input_size)
    text += f" Robot distance transform: {runs[0].distance}."
    if runs[0].zoom_in:
        z = runs[0].zoom_in
        text += (f" Zoom-in: clicks after the first {z.skip_clicks} run on a crop of the current mask's box and the positive "
                 f"clicks, grown {z.expansion}x and to >= {z.min_crop} px, resized to {runs[0].input_size}; 0 outside the crop.")
    text += "\n\n"
    text += _obedience_section(runs) + _curve_section(runs)
    if any(rb for rb in robustness):
        text += "## Click-location robustness (IoU@1 over random first clicks inside the object)\n\n"
        rrows = [[r.backend, rb["n"], rb["n_trials"], rb["min_border"], f"{rb['mean_iou@1']:.2f}",
                  f"{rb['mean_std_iou@1']:.2f}", rb["n_fallback"]] for r, rb in zip(runs, robustness) if rb]
        text += markdown_table(["backend", "objects", "clicks/object", "min px from border", "mean IoU@1 %",
                                "mean per-object std %", "objects too thin (fallback)"], rrows) + "\n"
    if any(c for c in containment):
        text += "## Containment (first clicks uniform over the whole image: the mask contains the clicked pixel)\n\n"
        crows = [[r.backend, c["n"], c["n_trials"], c["clicks"], f"{c['containment']:.3f}"]
                 for r, c in zip(runs, containment) if c]
        text += markdown_table(["backend", "images", "clicks/image", "clicks", "containment"], crows) + "\n"
    text += "## Worst samples (lowest mean IoU over the clicks)\n\n"
    for r in runs:
        text += f"- {r.backend}: " + ", ".join(
            f"{w.result.name} (IoU@1 {w.result.ious[0]:.3f}, IoU@{mc} {w.result.ious[-1]:.3f})" for w in r.worst
        ) + "\n"
    text += f"\nDataset sha256: `{dataset['sha256']}`\n"
    for note in dataset.get("notes", []):
        text += f"\nNote: {note}\n"
    return text


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _obedience_section(runs: Sequence[EvalRun]) -> str:
    """Click obedience of the follow-up clicks (the robot's 2nd click on), positive and negative apart."""
    if runs[0].max_clicks < 2:
        return ""
    rows = [[r.backend, "on" if r.zoom_in else "off", f"{_pct(r.metrics.get('obey_pos'))} ({r.metrics.get('obey_pos_clicks', 0)})",
             f"{_pct(r.metrics.get('obey_neg'))} ({r.metrics.get('obey_neg_clicks', 0)})"] for r in runs]
    text = "## Click obedience (follow-up clicks whose mask agrees with their label at the clicked pixel)\n\n"
    text += markdown_table(["backend", "zoom-in", "positive obeyed % (clicks)", "negative obeyed % (clicks)"], rows) + "\n"
    return text


def _curve_section(runs: Sequence[EvalRun]) -> str:
    """mIoU after each click, one column per click (the curve of miou_vs_clicks.png as numbers)."""
    mc = runs[0].max_clicks
    if mc < 2:
        return ""
    rows = [[r.backend, *[f"{r.metrics[f'miou@{k}']:.1f}" for k in range(1, mc + 1)]] for r in runs]
    return "## mIoU % after each click\n\n" + markdown_table(["backend", *map(str, range(1, mc + 1))], rows) + "\n"


def plot_curves(path: Path, runs: Sequence[EvalRun], title: str) -> Path:
    """miou_vs_clicks.png (agg_figure: no pyplot, no backend switch)."""
    fig = agg_figure((6, 4), dpi=100)
    ax = fig.subplots()
    for r in runs:
        ks = np.arange(1, r.max_clicks + 1)
        ax.plot(ks, [r.metrics[f"miou@{k}"] for k in ks], marker="o", markersize=3, label=r.backend)
    ax.set_ylim(0, 100)
    mc = max(r.max_clicks for r in runs)
    ax.set_xlim(0.5, mc + 0.5)
    ax.set_xticks(range(1, mc + 1, 1 if mc <= 10 else 2))
    ax.set_xlabel("clicks")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def overlay(worst: Worst, pred_thr: float) -> Image.Image:
    """Image with the prediction after the last click (blue), the object outline (yellow), the
    ignore band (grey) and the clicks (green positive, red negative, numbered)."""
    s = worst.sample
    img = s.image.astype(np.float32)
    pred = worst.prob > pred_thr
    img[pred] = 0.5 * img[pred] + 0.5 * np.array([40, 90, 255], np.float32)
    img[s.ignore] = 0.5 * img[s.ignore] + 0.5 * 128
    edge = s.mask & ~(np.roll(s.mask, 1, 0) & np.roll(s.mask, -1, 0) & np.roll(s.mask, 1, 1) & np.roll(s.mask, -1, 1))
    img[edge] = (255, 230, 0)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for i, c in enumerate(worst.result.clicks, start=1):
        color = (0, 220, 0) if c.is_positive else (230, 0, 0)
        draw.ellipse([c.x - 4, c.y - 4, c.x + 4, c.y + 4], fill=color, outline=(255, 255, 255))
        draw.text((c.x + 5, c.y - 5), str(i), fill=(255, 255, 255))
    r = worst.result
    caption = f"{r.name}  IoU@1 {r.ious[0]:.3f}  IoU@{len(r.ious)} {r.ious[-1]:.3f}"
    draw.rectangle(draw.textbbox((4, 4), caption), fill=(0, 0, 0))
    draw.text((4, 4), caption, fill=(255, 255, 255))
    return out


def write_eval_report(out_dir: str | Path, runs: Sequence[EvalRun], dataset: dict[str, Any],
                      models: Sequence[dict[str, Any]], robustness: Sequence[dict[str, Any] | None],
                      argv: Sequence[str] | None = None,
                      containment: Sequence[dict[str, Any] | None] | None = None) -> list[Path]:
    """Write eval.json, eval.md, miou_vs_clicks.png and worst_<run>_<rank>_<name>.png into out_dir.

    All or none: the files are written into a hidden folder in out_dir and moved into place only when
    every one is complete, so a full disk leaves none of them at a final path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".eval-", suffix=".partial", dir=out))
    try:
        staged = _write_files(stage, runs, dataset, models, robustness, argv, containment)
        for p in staged:
            os.replace(p, out / p.name)
    except OSError as exc:  # name the file the user asked for, not its hidden stand-in
        if exc.filename is None or not str(exc.filename).startswith(str(stage)):
            raise
        raise OSError(exc.errno, exc.strerror, str(out / Path(exc.filename).name)) from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out / p.name for p in staged]


def _write_files(out: Path, runs: Sequence[EvalRun], dataset: dict[str, Any], models: Sequence[dict[str, Any]],
                 robustness: Sequence[dict[str, Any] | None], argv: Sequence[str] | None,
                 containment: Sequence[dict[str, Any] | None] | None) -> list[Path]:
    containment = list(containment) if containment is not None else [None] * len(runs)
    first = runs[0]
    data = {
        "metrics": first.metrics,
        "backend": first.backend,
        "protocol": {
            "max_clicks": first.max_clicks,
            "pred_thr": first.pred_thr,
            "input_size": first.input_size,
            "iou_resolution": "original",
            "distance_transform": first.distance,
            "zoom_in": dataclasses.asdict(first.zoom_in) if first.zoom_in else None,
            "description": PROTOCOL_NOTE.format(max_clicks=first.max_clicks, thr=first.pred_thr, size=first.input_size),
        },
        "dataset": dataset,
        "runs": [run_json(r, m, rb, c) for r, m, rb, c in zip(runs, models, robustness, containment)],
        **provenance(argv),
    }
    data["versions"] = tool_versions(("scipy", "pycocotools", "tqdm", "matplotlib"))
    json_path, md_path = write_report(out, "eval", data, markdown(runs, dataset, robustness, containment))
    paths = [json_path, md_path, plot_curves(out / "miou_vs_clicks.png", runs, f"mIoU vs clicks, {dataset['name']}")]
    for ri, r in enumerate(runs, start=1):
        for rank, w in enumerate(r.worst, start=1):
            p = out / f"worst_{ri}_{rank}_{_safe(w.result.name)}.png"
            with atomic_path(p) as tmp:
                overlay(w, r.pred_thr).save(tmp, format="PNG")
            paths.append(p)
    return paths
