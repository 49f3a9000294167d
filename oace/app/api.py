"""The `segment` endpoint for scripts: one image, a list of clicks, one model -> mask PNG + numbers.

Clicks are `[[x, y, label], ...]` in the image's own pixels (x = column, y = row), label 1
positive / 0 negative, the first positive, at most the model's click rows (24 for the shipped
bundle). They run one after another through `model.evaluate.Session`, each output fed back as the
next click's `prev_mask`, so the mask is what the page shows after the same taps; the mask is
thresholded at the model's own threshold.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from oace.model.clicks import Click
from oace.model.evaluate import Session
from oace.model.zoom_in import ZoomIn
from oace.app.images import load_photo, write_mask_png
from oace.app.models import ModelSet
from oace.app.taps import bundle_rows, check_click
from oace.errors import InputError


def parse_clicks(text: str, width: int, height: int, max_clicks: int) -> list[Click]:
    """JSON `[[x, y, label], ...]` -> Clicks, checked against the image and the model's click rows."""
    try:
        rows = json.loads(text or "")
    except json.JSONDecodeError as exc:
        raise InputError(f"clicks: not JSON ({exc.msg}); expected [[x, y, label], ...]") from None
    if not isinstance(rows, list) or not rows:
        raise InputError("clicks: expected a non-empty list [[x, y, label], ...]")
    if len(rows) > max_clicks:
        raise InputError(f"clicks: {len(rows)} given, the bundle takes at most {max_clicks}")
    clicks = []
    for i, row in enumerate(rows):
        ok = isinstance(row, list) and len(row) == 3 and all(isinstance(v, (int, float)) for v in row)
        if not ok or row[2] not in (0, 1):
            raise InputError(f"clicks: row {i} is {row!r}; expected [x, y, label] with label 1 or 0")
        check_click(row[0], row[1], width, height)
        clicks.append(Click(int(row[0]), int(row[1]), row[2] == 1))
    if not clicks[0].is_positive:
        raise InputError("clicks: the first click must be positive (label 1)")
    return clicks


def segment(models: ModelSet, image_path: str, clicks_json: str, model_key: str, out_dir: Path,
            zoom_in: ZoomIn | None = None) -> tuple[str, dict[str, Any]]:
    """(mask PNG path, info). info: model, latency_ms (the last click's inference), latency_ms_per_click,
    area_fraction, threshold, image_size [w, h], bundle_clicks (the last click's rows on the model's grid)."""
    if not image_path:
        raise InputError("image: no file given")
    photo = load_photo(image_path)
    h, w = photo.shape[:2]
    model = models.get(model_key)
    contract = model.backend.contract
    clicks = parse_clicks(clicks_json, w, h, contract.max_clicks)
    session, latencies = Session(model.backend, photo, zoom_in), []
    with model.lock:
        for k in range(1, len(clicks) + 1):
            t0 = time.perf_counter()
            prob = session(clicks[:k])
            latencies.append(round((time.perf_counter() - t0) * 1000.0, 2))
    mask = prob > session.pred_thr
    path = write_mask_png(mask, out_dir / uuid.uuid4().hex / "mask.png")
    rows = bundle_rows(clicks, w, h, contract)
    info = {"model": model.name, "latency_ms": latencies[-1], "latency_ms_per_click": latencies,
            "area_fraction": round(float(np.mean(mask)), 6), "threshold": session.pred_thr, "image_size": [w, h],
            "bundle_clicks": rows[: len(clicks)].tolist()}
    return str(path), info
