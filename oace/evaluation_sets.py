"""The evaluation sets: never train or calibrate on them, or the reported metrics measure data the
model (or its int8 ranges) has seen. One check, shared by `oace train --data` and every calibration
source (`oace export --calib`, `oace quantize --calib`, `oace demo --calib`)."""

from __future__ import annotations

import os
from pathlib import Path

from oace.errors import InputError

# dataset kinds and folder names (lower case, '-' read as '_')
EVAL_SETS = ("grabcut", "berkeley", "davis", "sbd", "coco_mval")


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def is_evaluation_set(name: str) -> bool:
    return _key(name) in EVAL_SETS


def refuse_evaluation_set(path: str | os.PathLike, kind: str | None = None, use: str = "training") -> None:
    """InputError when `kind` or any folder of `path` (resolved) names an evaluation set.

    use: what the data would be used for ("training", "calibrating"), for the message.
    """
    if kind is not None and is_evaluation_set(kind):
        raise InputError(f"{path}: {kind} is an evaluation set; {use} on it would leak into the reported metrics")
    for folder in Path(path).resolve().parts:
        if is_evaluation_set(folder):
            raise InputError(f"{path}: folder {folder!r} is an evaluation set; {use} on it would leak into the reported metrics")
