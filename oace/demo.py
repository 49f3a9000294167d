"""The main job on embedded defaults: build the segmenter, segment a sample photo from one click,
save an overlay, print the model summary.

Weights: a checkpoint when one is given, else seeded random weights, and then every output says
loudly that the mask is meaningless. The sample photo is scikit-image's `astronaut` (shipped
inside the installed package, so the job runs offline on a fresh machine).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from oace.artifacts import atomic_path
from oace.reports import markdown_table, provenance, write_report

SAMPLE_CLICK = (150, 320)  # on the astronaut's suit, in the photo's pixels (x, y)
UNTRAINED = "UNTRAINED: seeded random weights (seed 0); the mask is meaningless until a trained checkpoint is used"


def sample_image() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def overlay(image: np.ndarray, prob: np.ndarray, clicks: list[tuple[float, float, bool]], threshold: float = 0.5) -> Image.Image:
    """The photo with the predicted mask tinted blue and clicks drawn (green positive, red negative)."""
    base = image.astype(np.float32)
    tint = np.array([30, 120, 255], np.float32)
    inside = (prob > threshold)[..., None]
    out = np.where(inside, 0.45 * base + 0.55 * tint, base).astype(np.uint8)
    img = Image.fromarray(out)
    draw = ImageDraw.Draw(img)
    r = max(4, round(min(image.shape[:2]) / 100))
    for x, y, positive in clicks:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(40, 220, 40) if positive else (230, 40, 40), outline="white")
    return img


def run_demo(out_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    from model.predictor import Predictor
    from model.registry import build_model, load_model
    from model.summary import summarize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if checkpoint is None:
        model, weights = build_model("segmenter", seed=0), UNTRAINED
    else:
        model = load_model(checkpoint)
        weights = f"checkpoint {checkpoint} ({model.checkpoint_meta.get('weights', 'no description')})"
    build_s = time.perf_counter() - t0

    image = sample_image()
    clicks = [(*SAMPLE_CLICK, True)]
    predictor = Predictor(model)
    t0 = time.perf_counter()
    predictor.set_image(image)
    prob = predictor.predict(clicks)
    infer_ms = (time.perf_counter() - t0) * 1e3

    overlay_path = out / "overlay.png"
    with atomic_path(overlay_path) as tmp:
        overlay(image, prob, clicks).save(tmp, format="PNG")

    summaries = [summarize(name) for name in ("prior", "msfnet", "segmenter")]
    report = {
        "weights": weights,
        "untrained": checkpoint is None,
        "image": {"source": "skimage.data.astronaut", "shape": list(image.shape)},
        "clicks": [{"x": x, "y": y, "positive": p} for x, y, p in clicks],
        "mask_fraction": float((prob > 0.5).mean()),
        "prob_range": [float(prob.min()), float(prob.max())],
        "timings": {"build_s": round(build_s, 3), "torch_inference_ms": round(infer_ms, 1)},
        "models": {s.name: s.to_json() for s in summaries},
        "outputs": {"overlay": str(overlay_path)},
        **provenance(),
    }
    table = markdown_table(
        ["network", "params (M)", "GMACs @512", "what"],
        [(s.name, f"{s.params / 1e6:.3f}", f"{s.macs / 1e9:.2f}", s.summary) for s in summaries],
    )
    md = (
        "# oace demo\n\n"
        + (f"**{UNTRAINED}.**\n\n" if checkpoint is None else f"Weights: {weights}\n\n")
        + table
        + f"\nOne positive click at {SAMPLE_CLICK} on `skimage.data.astronaut` ({image.shape[1]}x{image.shape[0]}); "
        f"PyTorch fp32 inference {infer_ms:.0f} ms on this host; {100 * report['mask_fraction']:.1f}% of pixels "
        f"above 0.5.\n\n![overlay](overlay.png)\n"
    )
    write_report(out, "demo", report, md)
    report["markdown"] = md
    return report
